import type { z } from "@hono/zod-openapi";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { Permission, Principal } from "../auth/rbac";
import type { TokenSigner } from "../auth/tokens";
import { isDatabaseUnavailable } from "../db/errors";
import type { DecisionRow } from "../db/schema";
import { holdLimiterOf } from "../decisions/holds";
import { presentDecision } from "../decisions/present";
import { receiptOf } from "../decisions/receipts";
import { CreateDecisionBody, DecisionId, IdempotencyHeaders, ListQuery, MAX_WAIT_SECONDS, WaitQuery } from "../decisions/schemas";
import { consumeDecision, createDecision, type DecisionDeps, getDecision, listDecisions, waitForDecision } from "../decisions/service";
import { ApiError } from "../http/errors";

/**
 * The MCP tools: the decision operations an agent needs, with input schemas built from the REST
 * API's own zod schemas and handlers calling the same service functions, as the caller's principal.
 * A tool is listed only when the caller's key holds every permission it needs, so a key that may not
 * ask for decisions does not even see request_approval.
 */

/** How long request_approval waits for a verdict unless told otherwise: within common proxy idle limits. */
export const DEFAULT_TOOL_WAIT_SECONDS = 30;

const WaitSeconds = WaitQuery.shape.wait.describe(
  `seconds (≤ ${MAX_WAIT_SECONDS}) to wait for a verdict while the decision is pending; 0 answers at once`,
);

const RequestApprovalInput = CreateDecisionBody.extend({
  idempotency_key: IdempotencyHeaders.shape["idempotency-key"]
    .unwrap()
    .describe("a key naming this request (e.g. the task and step): calling again with it answers the same decision, never a second one"),
  wait_seconds: WaitSeconds.default(DEFAULT_TOOL_WAIT_SECONDS),
});
const WaitInput = DecisionId.extend({ wait_seconds: WaitSeconds.default(MAX_WAIT_SECONDS) });
// The caller's own decisions: the requester filter is the caller, so it is not an input.
const ListMineInput = ListQuery.omit({ requester: true });

const PENDING_NOTE = "PENDING IS NOT APPROVAL: do not act. Call wait_for_decision with this decision_id to keep waiting, or give up.";

/** What every decision tool answers: the verdict in a form an agent cannot misread, the hashes, and the receipt once final. */
async function verdict(deps: DecisionDeps, signer: TokenSigner, row: DecisionRow): Promise<CallToolResult> {
  const decision = presentDecision(row);
  const final = row.status !== "pending";
  const approved = row.status === "approved" && row.consumedAt === null;
  const result = {
    decision_id: row.id,
    status: row.status,
    approved,
    payload_hash: decision.effective_payload_hash,
    requested_payload_hash: decision.payload_hash,
    ...(row.approvedPayloadHash === null ? {} : { approved_payload: decision.approved_payload }),
    receipt: final ? (await receiptOf(deps, signer, row)).receipt : null,
    note: !final
      ? PENDING_NOTE
      : approved
        ? "Approved: act on exactly the payload whose hash is payload_hash (approved_payload when an operator edited it), and call consume_approval."
        : row.consumedAt
          ? `Approved and consumed at ${decision.consumed_at}: this approval is used up; do not act on it again.`
          : `Not approved (${row.status}): do not act.`,
    decision,
  };
  return { content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result };
}

/** A refusal the agent can read (and the model can reason about) instead of a protocol failure. */
function toolError(code: string, message: string, details?: unknown): CallToolResult {
  const error = details === undefined ? { code, message } : { code, message, details };
  return { isError: true, content: [{ type: "text", text: JSON.stringify({ error }) }], structuredContent: { error } };
}

/** Runs a tool, answering an API refusal or an unavailable database as a tool error; anything else is logged, never echoed. */
async function answer(deps: DecisionDeps, tool: string, run: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof ApiError) return toolError(error.code, error.message, error.details);
    if (isDatabaseUnavailable(error)) return toolError("database_unavailable", "the database is unavailable; retry shortly");
    deps.logger.error("mcp tool failed", { tool, error });
    return toolError("internal_error", "an internal error occurred");
  }
}

/** A long-poll counted against the key's holds, like GET /v1/decisions/{id}?wait=. */
async function held(deps: DecisionDeps, principal: Principal, id: string, seconds: number, signal: AbortSignal): Promise<DecisionRow> {
  if (seconds === 0) return getDecision(deps, principal, id, { fresh: true });
  const release = holdLimiterOf(deps).acquire(principal);
  try {
    return await waitForDecision(deps, principal, id, seconds, signal);
  } finally {
    release();
  }
}

/** An MCP server exposing the tools `principal` may use; one per request (the transport is stateless). */
export function mcpServerFor(
  deps: DecisionDeps,
  signer: TokenSigner,
  principal: Principal,
  options: { version: string; requestSignal: AbortSignal },
): McpServer {
  // A wait ends when the client cancels the call or when its HTTP request goes away, so a gone
  // client does not keep its hold on the key's long-poll budget.
  const until = (toolSignal: AbortSignal) => AbortSignal.any([toolSignal, options.requestSignal]);
  const server = new McpServer({ name: "arbiter", version: options.version }, { capabilities: { tools: {} } });
  const may = (...needed: Permission[]) => needed.every((permission) => principal.permissions.has(permission));

  if (may("decisions:create", "decisions:read")) {
    server.registerTool(
      "request_approval",
      {
        title: "Ask a human for approval",
        description:
          "Ask Arbiter's operators whether an action may be performed, and wait up to wait_seconds for the verdict. " +
          "Act only when `approved` is true, on exactly the approved payload. A `pending` answer is NOT an approval: keep " +
          "waiting with wait_for_decision. Calling again with the same idempotency_key continues the same request.",
        inputSchema: RequestApprovalInput,
        annotations: { idempotentHint: true, openWorldHint: false },
      },
      (input, extra) =>
        answer(deps, "request_approval", async () => {
          const { idempotency_key, wait_seconds, ...request } = input;
          const { row } = await createDecision(deps, principal, request as z.output<typeof CreateDecisionBody>, idempotency_key);
          const settled = row.status === "pending" ? await held(deps, principal, row.id, wait_seconds, until(extra.signal)) : row;
          return verdict(deps, signer, settled);
        }),
    );
  }

  if (may("decisions:read")) {
    server.registerTool(
      "get_decision",
      {
        title: "Read a decision",
        description: "The current state of a decision: its status, whether it is approved, its payload hash and, once final, its receipt.",
        inputSchema: DecisionId,
        annotations: { readOnlyHint: true, openWorldHint: false },
      },
      ({ id }) => answer(deps, "get_decision", async () => verdict(deps, signer, await getDecision(deps, principal, id))),
    );
    server.registerTool(
      "wait_for_decision",
      {
        title: "Wait for a verdict",
        description: `Wait up to wait_seconds (≤ ${MAX_WAIT_SECONDS}) for a pending decision's verdict. ${PENDING_NOTE}`,
        inputSchema: WaitInput,
        annotations: { readOnlyHint: true, openWorldHint: false },
      },
      ({ id, wait_seconds }, extra) =>
        answer(deps, "wait_for_decision", async () =>
          verdict(deps, signer, await held(deps, principal, id, wait_seconds, until(extra.signal))),
        ),
    );
    server.registerTool(
      "list_my_decisions",
      {
        title: "List my decisions",
        description:
          "The decisions this key asked for, newest first (filters: status, kind, priority, created_after/before; cursor paging).",
        inputSchema: ListMineInput,
        annotations: { readOnlyHint: true, openWorldHint: false },
      },
      (filters) =>
        answer(deps, "list_my_decisions", async () => {
          const page = await listDecisions(deps, principal, { ...filters, requester: principal.keyId } as z.output<typeof ListQuery>);
          const result = {
            decisions: page.data.map((d) => ({
              decision_id: d.id,
              kind: d.kind,
              title: d.title,
              status: d.status,
              approved: d.status === "approved" && d.consumed_at === null,
              payload_hash: d.effective_payload_hash,
              created_at: d.created_at,
              resolved_at: d.resolved_at,
            })),
            next_cursor: page.next_cursor,
          };
          return { content: [{ type: "text", text: JSON.stringify(result) }], structuredContent: result };
        }),
    );
  }

  if (may("decisions:create")) {
    server.registerTool(
      "consume_approval",
      {
        title: "Mark an approval as used",
        description:
          "Record that the approved action was performed. Succeeds once per decision; a second call fails with already_consumed, " +
          "so two workers cannot both act on one approval. Call it right before (or as part of) acting.",
        inputSchema: DecisionId,
        annotations: { idempotentHint: false, destructiveHint: false, openWorldHint: false },
      },
      ({ id }) => answer(deps, "consume_approval", async () => verdict(deps, signer, await consumeDecision(deps, principal, id))),
    );
  }
  return server;
}
