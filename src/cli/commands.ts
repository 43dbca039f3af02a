import type { JSONWebKeySet } from "jose";
import type { ArbiterClient } from "../sdk/client";
import { ArbiterError, errorFromResponse } from "../sdk/errors";
import { items } from "../sdk/pagination";
import { verifyReceipt } from "../sdk/receipts";
import type {
  ApiKey,
  CreateDecisionRequest,
  CreatePolicyRequest,
  Decision,
  Operator,
  Page,
  Policy,
  QueuedDecision,
  TelemetryEventRequest,
  UpdatePolicyRequest,
} from "../sdk/types";
import { type FlagKind, integerFlag, jsonFlag, type ParsedArgs, positionals, requiredFlag, stringFlag, UsageError } from "./args";
import { record, table } from "./output";

/** What a command prints: a human-readable text and the value `--json` prints. */
export interface Output {
  text: string;
  json: unknown;
}

export interface CommandContext {
  args: ParsedArgs;
  /** the API client (built on first use: reading it without an address or key is a usage error) */
  readonly client: ArbiterClient;
  /** the API's address (a usage error when none was given) */
  baseUrl(): string;
  /** a file's text, or standard input for "-" */
  readText(path: string): Promise<string>;
}

export interface Command {
  summary: string;
  usage: string;
  flags: Record<string, FlagKind>;
  run(context: CommandContext): Promise<Output>;
}

const decisionRows = {
  ID: (d: Decision) => d.id,
  STATUS: (d: Decision) => d.status,
  PRIORITY: (d: Decision) => d.priority,
  KIND: (d: Decision) => d.kind,
  TITLE: (d: Decision) => d.title,
  CREATED: (d: Decision) => d.created_at,
};
const queueRows = {
  ID: (d: QueuedDecision) => d.id,
  PRIORITY: (d: QueuedDecision) => d.priority,
  LEVEL: (d: QueuedDecision) => d.escalation_level,
  KIND: (d: QueuedDecision) => d.kind,
  TITLE: (d: QueuedDecision) => d.title,
  EXPIRES: (d: QueuedDecision) => d.expires_at,
};
const keyRows = {
  ID: (k: ApiKey) => k.id,
  NAME: (k: ApiKey) => k.name,
  ROLE: (k: ApiKey) => k.role,
  STATUS: (k: ApiKey) => k.status,
  PREFIX: (k: ApiKey) => k.display_prefix,
  CREATED: (k: ApiKey) => k.created_at,
  EXPIRES: (k: ApiKey) => k.expires_at,
};

const operatorRows = {
  ID: (o: Operator) => o.id,
  NAME: (o: Operator) => o.name,
  ROLE: (o: Operator) => o.role,
  STATUS: (o: Operator) => o.status,
  EMAIL: (o: Operator) => o.email,
  SLACK: (o: Operator) => o.slack_user_id,
};
const policyRows = {
  ID: (p: Policy) => p.id,
  POS: (p: Policy) => p.position,
  VERSION: (p: Policy) => p.version,
  STATE: (p: Policy) => p.state,
  OUTCOME: (p: Policy) => p.outcome,
  NAME: (p: Policy) => p.name,
};
const policyOutput = (policy: Policy): Output => ({ text: record(policy), json: policy });
const policyFlags: Record<string, FlagKind> = {
  name: "string",
  description: "string",
  expression: "string",
  "expression-file": "string",
  outcome: "string",
  state: "string",
  position: "string",
  reason: "string",
  "required-approvals": "string",
  priority: "string",
  "confirm-broad": "boolean",
};
/** The rule fields given as flags; the expression may come from a file (or "-" for stdin), shells mangle quotes. */
async function policyFields(args: ParsedArgs, readText: CommandContext["readText"]) {
  const file = stringFlag(args, "expression-file");
  return {
    name: stringFlag(args, "name"),
    description: stringFlag(args, "description"),
    expression: file ? (await readText(file)).trim() : stringFlag(args, "expression"),
    outcome: stringFlag(args, "outcome") as Policy["outcome"] | undefined,
    state: stringFlag(args, "state") as Policy["state"] | undefined,
    position: integerFlag(args, "position"),
    reason: stringFlag(args, "reason"),
    required_approvals: integerFlag(args, "required-approvals"),
    priority: stringFlag(args, "priority") as NonNullable<Policy["priority"]> | undefined,
    confirm_broad: args.flags.has("confirm-broad") ? true : undefined,
  };
}
const replayText = (result: Record<string, unknown>) => record(result);

const decisionOutput = (decision: Decision): Output => ({ text: record(decision), json: decision });

/** A list command's output: one page (with the cursor of the next), or with --all every item. */
async function listOutput<T>(
  args: ParsedArgs,
  columns: Record<string, (row: T) => unknown>,
  page: (cursor: string | undefined) => Promise<Page<T>>,
): Promise<Output> {
  if (args.flags.has("all")) {
    const all: T[] = [];
    for await (const item of items((query: { cursor?: string }) => page(query.cursor), {})) all.push(item);
    return { text: table(all, columns), json: all };
  }
  const first = await page(stringFlag(args, "cursor"));
  const more = first.next_cursor ? `\nmore: --cursor ${first.next_cursor}` : "";
  return { text: table(first.data, columns) + more, json: first };
}

const listFlags: Record<string, FlagKind> = { limit: "string", cursor: "string", all: "boolean" };

/** `{events: [...]}`, a JSON array, or one JSON event per line */
function parseEvents(text: string): TelemetryEventRequest[] {
  const trimmed = text.trim();
  try {
    const parsed = JSON.parse(trimmed) as unknown;
    if (Array.isArray(parsed)) return parsed as TelemetryEventRequest[];
    if (parsed && typeof parsed === "object" && Array.isArray((parsed as { events?: unknown }).events)) {
      return (parsed as { events: TelemetryEventRequest[] }).events;
    }
    return [parsed as TelemetryEventRequest];
  } catch {
    return trimmed
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line, index) => {
        try {
          return JSON.parse(line) as TelemetryEventRequest;
        } catch {
          throw new UsageError(`events: line ${index + 1} is not JSON (give a JSON array, {"events": [...]}, or one JSON event per line)`);
        }
      });
  }
}

function parseJson(text: string, flag: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`${flag} must hold valid JSON`);
  }
}

/** The server's public keys: public, so no API key is needed. */
async function publishedJwks(baseUrl: string): Promise<unknown> {
  const url = `${baseUrl.replace(/\/+$/, "")}/.well-known/jwks.json`;
  let response: Response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, signal: AbortSignal.timeout(30_000) });
  } catch (error) {
    throw new ArbiterError({ status: 0, code: "network_error", message: `could not reach ${url}: ${(error as Error).message}` });
  }
  if (!response.ok) throw await errorFromResponse(response, undefined);
  return response.json();
}

export const COMMANDS: Record<string, Command> = {
  "decisions list": {
    summary: "list decisions, newest first",
    usage: "decisions list [--status S] [--kind K] [--priority P] [--limit N] [--cursor C | --all]",
    flags: { ...listFlags, status: "string", kind: "string", priority: "string" },
    run: ({ args, client }) => {
      positionals(args, []);
      const filters = {
        status: stringFlag(args, "status") as Decision["status"] | undefined,
        kind: stringFlag(args, "kind"),
        priority: stringFlag(args, "priority") as Decision["priority"] | undefined,
        limit: integerFlag(args, "limit"),
      };
      return listOutput(args, decisionRows, (cursor) => client.decisions.list({ ...filters, cursor }));
    },
  },
  "decisions pending": {
    summary: "the operator queue: pending, highest priority first",
    usage: "decisions pending [--limit N] [--cursor C | --all]",
    flags: listFlags,
    run: ({ args, client }) => {
      positionals(args, []);
      const limit = integerFlag(args, "limit");
      return listOutput(args, queueRows, (cursor) => client.decisions.pending({ limit, cursor }));
    },
  },
  "decisions get": {
    summary: "one decision",
    usage: "decisions get <id>",
    flags: {},
    run: async ({ args, client }) => decisionOutput(await client.decisions.get(positionals(args, ["id"])[0]!)),
  },
  "decisions create": {
    summary: "ask for a decision",
    usage:
      "decisions create --kind K --title T --payload JSON [--context JSON] [--priority P] [--required-approvals N] [--expires-in S] [--on-timeout reject|approve|escalate] [--callback-url URL] [--idempotency-key K]",
    flags: {
      kind: "string",
      title: "string",
      payload: "string",
      context: "string",
      priority: "string",
      "required-approvals": "string",
      "expires-in": "string",
      "on-timeout": "string",
      "callback-url": "string",
      "idempotency-key": "string",
    },
    run: async ({ args, client }) => {
      positionals(args, []);
      requiredFlag(args, "payload");
      const request: CreateDecisionRequest = {
        kind: requiredFlag(args, "kind"),
        title: requiredFlag(args, "title"),
        payload: jsonFlag(args, "payload") as CreateDecisionRequest["payload"],
        context: jsonFlag(args, "context") as CreateDecisionRequest["context"],
        priority: stringFlag(args, "priority") as CreateDecisionRequest["priority"],
        required_approvals: integerFlag(args, "required-approvals"),
        expires_in: integerFlag(args, "expires-in"),
        on_timeout: stringFlag(args, "on-timeout") as CreateDecisionRequest["on_timeout"],
        callback_url: stringFlag(args, "callback-url"),
      };
      return decisionOutput(await client.decisions.create(request, { idempotencyKey: stringFlag(args, "idempotency-key") }));
    },
  },
  "decisions approve": {
    summary: "approve a pending decision (or add one approval to its quorum)",
    usage: "decisions approve <id> [--reason R] [--payload JSON]",
    flags: { reason: "string", payload: "string" },
    run: async ({ args, client }) => {
      const [id] = positionals(args, ["id"]);
      const payload = jsonFlag(args, "payload") as CreateDecisionRequest["payload"] | undefined;
      return decisionOutput(await client.decisions.approve(id!, { reason: stringFlag(args, "reason"), payload }));
    },
  },
  "decisions reject": {
    summary: "reject a pending decision",
    usage: "decisions reject <id> --reason R",
    flags: { reason: "string" },
    run: async ({ args, client }) => {
      const [id] = positionals(args, ["id"]);
      return decisionOutput(await client.decisions.reject(id!, requiredFlag(args, "reason")));
    },
  },
  "decisions wait": {
    summary: "wait for a verdict (long-poll) and print the decision",
    usage: "decisions wait <id> [--timeout SECONDS]",
    flags: { timeout: "string" },
    run: async ({ args, client }) => {
      const [id] = positionals(args, ["id"]);
      return decisionOutput(await client.decisions.waitFor(id!, { timeoutSeconds: integerFlag(args, "timeout") }));
    },
  },
  "receipts get": {
    summary: "print the signed receipt of a final decision (pipe it to `receipts verify -`)",
    usage: "receipts get <decision-id>",
    flags: {},
    run: async ({ args, client }) => {
      const receipt = await client.receipts.get(positionals(args, ["decision-id"])[0]!);
      return { text: receipt.receipt, json: receipt };
    },
  },
  "receipts verify": {
    summary: "verify a decision receipt against a payload, offline with --jwks or with the server's published keys",
    usage: "receipts verify <receipt|-> (--payload JSON | --payload-file PATH|-) [--jwks PATH] [--decision ID] [--issuer ISS]",
    flags: { payload: "string", "payload-file": "string", jwks: "string", decision: "string", issuer: "string" },
    run: async (context) => {
      const { args, readText } = context;
      const [given] = positionals(args, ["receipt"]);
      const receipt = given === "-" ? (await readText("-")).trim() : given!;
      const payloadFile = stringFlag(args, "payload-file");
      if ((payloadFile === undefined) === (stringFlag(args, "payload") === undefined)) {
        throw new UsageError("give exactly one of --payload or --payload-file");
      }
      const payload = payloadFile === undefined ? jsonFlag(args, "payload") : parseJson(await readText(payloadFile), "--payload-file");
      const jwksFile = stringFlag(args, "jwks");
      const jwks = jwksFile === undefined ? await publishedJwks(context.baseUrl()) : parseJson(await readText(jwksFile), "--jwks");
      const verified = await verifyReceipt(receipt, {
        jwks: jwks as JSONWebKeySet,
        payload,
        decisionId: stringFlag(args, "decision"),
        issuer: stringFlag(args, "issuer"),
      });
      const { claims } = verified;
      const text = record({
        verified: true,
        approved: verified.approved,
        decision: claims.sub,
        outcome: claims.outcome,
        decided_by: claims.decided_by,
        decided_at: claims.decided_at,
        payload_hash: claims.payload_hash,
        kid: verified.kid,
      });
      return { text, json: verified };
    },
  },
  "telemetry send": {
    summary: "send events: from a file (JSON array, {events}, or NDJSON; - for stdin) or one from flags",
    usage:
      "telemetry send --file PATH|-  |  telemetry send --type T --source S --severity debug|info|warn|error|critical [--attributes JSON] [--occurred-at ISO] [--id ID]",
    flags: {
      file: "string",
      type: "string",
      source: "string",
      severity: "string",
      attributes: "string",
      "occurred-at": "string",
      id: "string",
    },
    run: async ({ args, client, readText }) => {
      positionals(args, []);
      const file = stringFlag(args, "file");
      const events = file
        ? parseEvents(await readText(file))
        : [
            {
              id: stringFlag(args, "id"),
              type: requiredFlag(args, "type"),
              source: requiredFlag(args, "source"),
              severity: requiredFlag(args, "severity") as TelemetryEventRequest["severity"],
              occurred_at: stringFlag(args, "occurred-at") ?? new Date(),
              attributes: jsonFlag(args, "attributes") as TelemetryEventRequest["attributes"],
            },
          ];
      if (events.length === 0) throw new UsageError("no events to send");
      const result = await client.telemetry.sendEvents(events);
      return { text: record(result), json: result };
    },
  },
  "keys create": {
    summary: "create an API key (its raw value is printed once)",
    usage: "keys create --name N --role admin|operator|readonly|service [--permissions p1,p2] [--expires-at ISO] [--operator ID]",
    flags: { name: "string", role: "string", permissions: "string", "expires-at": "string", operator: "string" },
    run: async ({ args, client }) => {
      positionals(args, []);
      const created = await client.keys.create({
        name: requiredFlag(args, "name"),
        role: requiredFlag(args, "role") as ApiKey["role"],
        permissions: stringFlag(args, "permissions")?.split(",") as ApiKey["permissions"] | undefined,
        expires_at: stringFlag(args, "expires-at"),
        operator_id: stringFlag(args, "operator"),
      });
      const { key, ...view } = created;
      return { text: `${record(view)}\n\nkey: ${key}\n(shown once: store it now, it cannot be retrieved again)`, json: created };
    },
  },
  "keys list": {
    summary: "list API keys",
    usage: "keys list [--role R] [--status active|rotating|expired|revoked] [--limit N] [--cursor C | --all]",
    flags: { ...listFlags, role: "string", status: "string" },
    run: ({ args, client }) => {
      positionals(args, []);
      const filters = {
        role: stringFlag(args, "role") as ApiKey["role"] | undefined,
        status: stringFlag(args, "status") as ApiKey["status"] | undefined,
        limit: integerFlag(args, "limit"),
      };
      return listOutput(args, keyRows, (cursor) => client.keys.list({ ...filters, cursor }));
    },
  },
  "policies list": {
    summary: "list policies in evaluation order",
    usage: "policies list",
    flags: {},
    run: async ({ args, client }) => {
      positionals(args, []);
      const all = await client.policies.list();
      return { text: table(all, policyRows), json: all };
    },
  },
  "policies get": {
    summary: "a policy's current version (--version N: an older one)",
    usage: "policies get <id> [--version N]",
    flags: { version: "string" },
    run: async ({ args, client }) => {
      const [id] = positionals(args, ["id"]);
      const version = integerFlag(args, "version");
      return policyOutput(version === undefined ? await client.policies.get(id!) : await client.policies.version(id!, version));
    },
  },
  "policies versions": {
    summary: "every version of a policy, newest first",
    usage: "policies versions <id>",
    flags: {},
    run: async ({ args, client }) => {
      const all = await client.policies.versions(positionals(args, ["id"])[0]!);
      return { text: table(all, { ...policyRows, CREATED: (p: Policy) => p.created_at }), json: all };
    },
  },
  "policies create": {
    summary: "save a rule (shadow unless --state enforce)",
    usage:
      "policies create --name N --expression CEL|--expression-file PATH --outcome approve|deny|require [--state shadow|enforce|disabled] [--position N] [--reason R] [--required-approvals N] [--priority P] [--confirm-broad]",
    flags: policyFlags,
    run: async ({ args, client, readText }) => {
      positionals(args, []);
      const fields = await policyFields(args, readText);
      if (!fields.expression) throw new UsageError("give --expression or --expression-file");
      const request: CreatePolicyRequest = {
        ...fields,
        name: requiredFlag(args, "name"),
        expression: fields.expression,
        outcome: requiredFlag(args, "outcome") as CreatePolicyRequest["outcome"],
      };
      return policyOutput(await client.policies.create(request));
    },
  },
  "policies update": {
    summary: "change a policy: saves a new version",
    usage: "policies update <id> [rule flags as for create] [--expected-version N]",
    flags: { ...policyFlags, "expected-version": "string" },
    run: async ({ args, client, readText }) => {
      const [id] = positionals(args, ["id"]);
      const request: UpdatePolicyRequest = {
        ...(await policyFields(args, readText)),
        expected_version: integerFlag(args, "expected-version"),
      };
      return policyOutput(await client.policies.update(id!, request));
    },
  },
  "policies disable": {
    summary: "stop evaluating a policy (a new version, state disabled)",
    usage: "policies disable <id>",
    flags: {},
    run: async ({ args, client }) => policyOutput(await client.policies.disable(positionals(args, ["id"])[0]!)),
  },
  "policies delete": {
    summary: "delete a policy (its versions stay readable)",
    usage: "policies delete <id>",
    flags: {},
    run: async ({ args, client }) => {
      const [id] = positionals(args, ["id"]);
      await client.policies.delete(id!);
      return { text: `deleted ${id}`, json: { id, deleted: true } };
    },
  },
  "policies replay": {
    summary: "what a saved rule would have done over past decisions",
    usage: "policies replay <id> --from ISO [--to ISO] [--limit N]",
    flags: { from: "string", to: "string", limit: "string" },
    run: async ({ args, client }) => {
      const [id] = positionals(args, ["id"]);
      const result = await client.policies.replay(id!, {
        from: requiredFlag(args, "from"),
        to: stringFlag(args, "to"),
        limit: integerFlag(args, "limit"),
      });
      return { text: replayText(result), json: result };
    },
  },
  "policies preview": {
    summary: "what an unsaved rule would have done over past decisions",
    usage: "policies preview --expression CEL|--expression-file PATH --outcome O --from ISO [--to ISO] [--limit N] [--reason R]",
    flags: { ...policyFlags, from: "string", to: "string", limit: "string" },
    run: async ({ args, client, readText }) => {
      positionals(args, []);
      const fields = await policyFields(args, readText);
      if (!fields.expression) throw new UsageError("give --expression or --expression-file");
      const result = await client.policies.preview({
        expression: fields.expression,
        outcome: requiredFlag(args, "outcome") as Policy["outcome"],
        reason: fields.reason,
        required_approvals: fields.required_approvals,
        priority: fields.priority,
        from: requiredFlag(args, "from"),
        to: stringFlag(args, "to"),
        limit: integerFlag(args, "limit"),
      });
      return { text: replayText(result), json: result };
    },
  },
  "keys revoke": {
    summary: "revoke an API key and its tokens at once",
    usage: "keys revoke <id>",
    flags: {},
    run: async ({ args, client }) => {
      const key = await client.keys.revoke(positionals(args, ["id"])[0]!);
      return { text: record(key), json: key };
    },
  },
  "operators create": {
    summary: "record a person, who can then hold keys and approve",
    usage: "operators create --name N --role admin|operator|readonly [--email E] [--slack-user-id U…]",
    flags: { name: "string", role: "string", email: "string", "slack-user-id": "string" },
    run: async ({ args, client }) => {
      positionals(args, []);
      const person = await client.operators.create({
        name: requiredFlag(args, "name"),
        role: requiredFlag(args, "role") as Operator["role"],
        email: stringFlag(args, "email"),
        slack_user_id: stringFlag(args, "slack-user-id"),
      });
      return { text: record(person), json: person };
    },
  },
  "operators list": {
    summary: "list people",
    usage: "operators list [--role R] [--status active|disabled] [--limit N] [--cursor C | --all]",
    flags: { ...listFlags, role: "string", status: "string" },
    run: ({ args, client }) => {
      positionals(args, []);
      const filters = {
        role: stringFlag(args, "role") as Operator["role"] | undefined,
        status: stringFlag(args, "status") as Operator["status"] | undefined,
        limit: integerFlag(args, "limit"),
      };
      return listOutput(args, operatorRows, (cursor) => client.operators.list({ ...filters, cursor }));
    },
  },
  "operators assign-key": {
    summary: "give an existing key to a person",
    usage: "operators assign-key <operator-id> <key-id>",
    flags: {},
    run: async ({ args, client }) => {
      const [id, keyId] = positionals(args, ["operator-id", "key-id"]);
      const key = await client.operators.assignKey(id!, keyId!);
      return { text: record(key), json: key };
    },
  },
  "operators disable": {
    summary: "disable a person and revoke every key they hold",
    usage: "operators disable <id>",
    flags: {},
    run: async ({ args, client }) => {
      const person = await client.operators.disable(positionals(args, ["id"])[0]!);
      return { text: record(person), json: person };
    },
  },
};
