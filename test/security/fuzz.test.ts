import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect } from "node:net";
import { eq, inArray } from "drizzle-orm";
import { ROLE_PERMISSIONS } from "../../src/auth/rbac";
import { apiKeys, decisions, policies, policyVersions, type Role, telemetryEvents, telemetrySnapshots } from "../../src/db/schema";
import { startTestApp, type TestApp } from "../helpers/app";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Adversarial input, generated from /openapi.json so that every operation — including routes added
 * later — is covered: hostile path parameters, query parameters, JSON bodies, content types and
 * headers, from a fixed seed. The rule under test: bad input is a 4xx JSON error
 * `{error: {code, message, details?}}`, never a 5xx or a stack trace, and nothing stored changes.
 */

// ── Deterministic randomness ────────────────────────────────────────────────────────────────────
function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = mulberry32(0xa4b17e4);
const pick = <T>(items: readonly T[], count: number): T[] => {
  const pool = [...items];
  const chosen: T[] = [];
  while (chosen.length < count && pool.length > 0) chosen.push(pool.splice(Math.floor(random() * pool.length), 1)[0]!);
  return chosen;
};
const seededUuid = () => {
  const hex = Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16)).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
};

// ── JSON text with tokens JSON.stringify cannot write (1e309, 10,000-level nesting, raw escapes) ──
class Raw {
  constructor(readonly text: string) {}
}
function toJsonText(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${value.map(toJsonText).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${toJsonText(v)}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}
const nested = (levels: number) => new Raw(`${"[".repeat(levels)}1${"]".repeat(levels)}`);
const nestedObjects = (levels: number) => new Raw(`${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`);

// ── OpenAPI document → valid values ─────────────────────────────────────────────────────────────
type Schema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  example?: unknown;
  default?: unknown;
  anyOf?: Schema[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema | boolean;
  items?: Schema;
  minItems?: number;
};
interface Parameter {
  in: "path" | "query" | "header";
  name: string;
  required?: boolean;
  schema: Schema;
}
interface Operation {
  method: string;
  path: string;
  permission: string;
  parameters: Parameter[];
  body?: { required: boolean; schema: Schema };
}

let components: Record<string, Schema> = {};
const resolve = (schema: Schema): Schema => (schema.$ref ? resolve(components[schema.$ref.split("/").at(-1)!]!) : schema);
const typeOf = (schema: Schema): string | undefined =>
  Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : (schema.type ?? (schema.anyOf ? "any" : undefined));

// Date-times are handed out in increasing order, so `from` < `to`, `since` < `until` and the like hold.
let instantStep = 0;
const nextInstant = () => new Date(Date.now() - 10 * 60_000 + instantStep++ * 1000).toISOString();
const STRING_CANDIDATES = ["fuzz", "deploy", "fuzz-source", "0123456789abcdef0123456789abcdef", "5m"];

function validValue(raw: Schema): unknown {
  const schema = resolve(raw);
  if (schema.enum) return schema.enum[0];
  if (schema.example !== undefined) return schema.example;
  if (schema.default !== undefined) return schema.default;
  if (schema.anyOf) return validValue(schema.anyOf[0]!);
  switch (typeOf(schema)) {
    case "object": {
      const properties = schema.properties ?? {};
      const value = Object.fromEntries((schema.required ?? []).map((name) => [name, validValue(properties[name]!)]));
      if (!schema.properties && typeof schema.additionalProperties === "object") value.fuzz = validValue(schema.additionalProperties);
      return value;
    }
    case "array":
      return schema.items ? [validValue(schema.items)] : [];
    case "integer":
    case "number":
      return Math.max(schema.minimum ?? 1, Math.min(schema.maximum ?? 1, 1));
    case "boolean":
      return true;
    case "string":
      if (schema.format === "uuid") return seededUuid();
      if (schema.format === "date-time") return nextInstant();
      return STRING_CANDIDATES.find((s) => !schema.pattern || new RegExp(schema.pattern).test(s)) ?? "fuzz";
    default:
      return "fuzz";
  }
}

// ── Hostile values ──────────────────────────────────────────────────────────────────────────────
interface Hostile {
  label: string;
  value: unknown;
  /** invalid whatever the field: the answer must be a 4xx */
  alwaysInvalid?: boolean;
  /** invalid for a field of this JSON type (a wrong type) */
  invalidFor?: (type: string | undefined) => boolean;
}
const NUMERIC = new Set(["integer", "number"]);
const wrongType = (valueType: string) => (type: string | undefined) =>
  type !== undefined && type !== "any" && type !== valueType && !(NUMERIC.has(valueType) && NUMERIC.has(type));

const HOSTILE_JSON: Hostile[] = [
  { label: "NUL", value: "\u0000", alwaysInvalid: true },
  { label: "embedded NUL", value: "deploy\u0000x", alwaysInvalid: true },
  { label: "lone high surrogate", value: "\ud800", alwaysInvalid: true },
  { label: "lone low surrogate", value: "a\udfffb", alwaysInvalid: true },
  { label: "NUL in a nested key", value: { "k\u0000": 1 }, alwaysInvalid: true },
  { label: "10,000-level array", value: nested(10_000), alwaysInvalid: true },
  { label: "10,000-level object", value: nestedObjects(10_000), alwaysInvalid: true },
  { label: "1e309", value: new Raw("1e309"), alwaysInvalid: true },
  { label: "-1e309", value: new Raw("-1e309"), alwaysInvalid: true },
  { label: "[1e309]", value: [new Raw("1e309")], alwaysInvalid: true },
  { label: "1e400 digits", value: new Raw(`1${"0".repeat(400)}`), alwaysInvalid: true },
  { label: "-0", value: new Raw("-0"), invalidFor: wrongType("integer") },
  { label: "2^53+1", value: new Raw("9007199254740993"), invalidFor: (type) => type === "integer" || wrongType("number")(type) },
  { label: "negative", value: -1, invalidFor: wrongType("integer") },
  { label: "fraction", value: 0.5, invalidFor: (type) => type === "integer" || wrongType("number")(type) },
  { label: "true", value: true, invalidFor: wrongType("boolean") },
  { label: "null", value: null, invalidFor: wrongType("null") },
  { label: "array", value: ["a", 1], invalidFor: wrongType("array") },
  { label: "object", value: { a: 1 }, invalidFor: wrongType("object") },
  { label: "__proto__ key", value: new Raw('{"__proto__":{"admin":true}}'), alwaysInvalid: true },
  { label: "constructor key", value: { constructor: { prototype: { admin: true } } }, invalidFor: wrongType("object") },
  { label: "empty string", value: "", invalidFor: wrongType("string") },
  { label: "100k string", value: "x".repeat(100_000), invalidFor: wrongType("string") },
  { label: "SQL", value: "'; drop table decisions; --", invalidFor: wrongType("string") },
  { label: "emoji/RTL", value: "🙂\u202eevil\u200b", invalidFor: wrongType("string") },
  { label: "invalid date", value: "2026-02-30T00:00:00Z", invalidFor: wrongType("string") },
  { label: "year 0", value: "0000-01-01T00:00:00Z", invalidFor: wrongType("string") },
  { label: "year 10000 via offset", value: "9999-12-31T23:59:59-23:59", invalidFor: wrongType("string") },
  { label: "year 10000", value: "10000-01-01T00:00:00Z", invalidFor: wrongType("string") },
  { label: "epoch", value: "1970-01-01T00:00:00Z", invalidFor: wrongType("string") },
  { label: "metadata URL", value: "https://169.254.169.254/latest/meta-data/", invalidFor: wrongType("string") },
  { label: "mapped loopback URL", value: "https://[::ffff:127.0.0.1]/x", invalidFor: wrongType("string") },
];

const HOSTILE_QUERY = [
  "abc",
  "-1",
  "0",
  "1e309",
  "99999999999999999999999",
  "1.5",
  "",
  "%00",
  "a%00b",
  "%ED%A0%80",
  "%E2%98%83",
  "%ZZ",
  "x".repeat(5000),
  "2026-02-30T00:00:00Z",
  "0000-01-01T00:00:00Z",
  "9999-12-31T23:59:59-23:59",
  "0001-01-01T00:00:00%2B14:00",
  "true",
  "null",
  "[]",
];
const b64url = (text: string) => btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
const cursorAt = (ms: number, id: string) => b64url(JSON.stringify([ms, id]));
/** forged cursors; `valid` ones name a well-formed position (an event id may be any plain text) */
const HOSTILE_CURSORS: { cursor: string; valid?: boolean }[] = [
  { cursor: "!!!" },
  { cursor: b64url("{}") },
  { cursor: b64url('[1e20,"x"]') },
  { cursor: cursorAt(1_700_000_000_000, "a\u0000b") },
  { cursor: cursorAt(1_700_000_000_000, "\ud800") },
  { cursor: cursorAt(1_700_000_000_000, "'; drop table x; --"), valid: true }, // a text id may hold anything storable
  { cursor: cursorAt(8_640_000_000_000_001, "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a") },
  { cursor: cursorAt(-62_198_755_200_000, "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a") }, // year -1
  { cursor: cursorAt(253_402_300_800_000, "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a") }, // year 10000
  { cursor: cursorAt(1_700_000_000_000, "a".repeat(128)), valid: true },
  { cursor: cursorAt(1_700_000_000_000, "9.0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a"), valid: true },
];
const HOSTILE_PATH_SEGMENTS = [
  "not-a-uuid",
  "%00",
  "0193a5b2-7c1e-7d3a-9f4e-2b6c8d0e1f2a%00",
  "..%2F..%2Fhealth%2Flive",
  "%2F",
  "%E2%98%83",
  "%F0%9F%98%80",
  "%ED%A0%80",
  "%ZZ",
  "%27%20OR%201%3D1%20--",
  "00000000-0000-0000-0000-000000000000",
  "0193A5B2-7C1E-7D3A-9F4E-2B6C8D0E1F2A",
  "x".repeat(4000),
];

// ── Requests and checks ─────────────────────────────────────────────────────────────────────────
interface Case {
  label: string;
  method: string;
  path: string;
  as?: Role;
  headers?: Record<string, string>;
  body?: string | Uint8Array<ArrayBuffer> | FormData;
  /** the input is invalid: the answer must be a 4xx */
  mustReject: boolean;
}

const LEAK =
  /(\n\s+at |\.ts:\d+|node_modules|PostgresError|syntax error at or near|invalid byte sequence|violates|"stack"|Failed query|unsupported Unicode)/;
let t: TestApp;
const seeded = { decisionId: "", keyId: "", eventIds: ["fuzz-seed-1", "fuzz-seed-2", "fuzz-seed-3"], snapshotId: "", policyId: "" };

async function send(c: Case): Promise<string | undefined> {
  const headers = new Headers(c.headers);
  if (c.as) headers.set("X-API-Key", t.keys[c.as]);
  let response: Response;
  try {
    response = await fetch(t.url + c.path, { method: c.method, headers, body: c.body });
  } catch (error) {
    return `${c.label}: request failed: ${(error as Error).message}`;
  }
  const where = `${c.method} ${c.path.slice(0, 120)} [${c.label}] as ${c.as ?? "anonymous"}`;
  if ((response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    await response.body?.cancel();
    return c.mustReject ? `${where}: accepted (${response.status})` : undefined;
  }
  const text = await response.text();
  if (response.status >= 500) return `${where}: ${response.status} ${text.slice(0, 300)}`;
  if (LEAK.test(text)) return `${where}: leaks internals: ${text.slice(0, 300)}`;
  if (c.mustReject && response.status < 400) return `${where}: accepted (${response.status}) ${text.slice(0, 200)}`;
  if (response.status >= 400) {
    let body: { error?: Record<string, unknown> } | undefined;
    try {
      body = JSON.parse(text);
    } catch {
      return `${where}: ${response.status} is not JSON: ${text.slice(0, 200)}`;
    }
    const error = body?.error;
    const shapeOk =
      !!error &&
      typeof error.code === "string" &&
      typeof error.message === "string" &&
      Object.keys(body!).length === 1 &&
      Object.keys(error).every((k) => ["code", "message", "details"].includes(k));
    if (!shapeOk) return `${where}: ${response.status} has the wrong error shape: ${text.slice(0, 200)}`;
  }
  return undefined;
}

async function runAll(cases: Case[]): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const failure = await send(cases[next++]!);
      if (failure) failures.push(failure);
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  return failures;
}

// ── Case generation ─────────────────────────────────────────────────────────────────────────────
function operationsOf(doc: { paths: Record<string, Record<string, Record<string, unknown>>> }): Operation[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => {
      const content = (op.requestBody as { required?: boolean; content?: Record<string, { schema: Schema }> } | undefined)?.content;
      return {
        method: method.toUpperCase(),
        path,
        permission: op["x-permission"] as string,
        parameters: (op.parameters as Parameter[] | undefined) ?? [],
        body: content?.["application/json"]
          ? { required: Boolean((op.requestBody as { required?: boolean }).required), schema: content["application/json"].schema }
          : undefined,
      };
    }),
  );
}

/** The callers that hold the operation's permission: always the admin, plus one other permitted role. */
function callersOf(op: Operation): Role[] {
  if (op.permission === "public") return ["admin"];
  const others = (["operator", "readonly", "service"] as const).filter((role) =>
    (ROLE_PERMISSIONS[role] as readonly string[]).includes(op.permission),
  );
  return ["admin", ...pick(others, 1)];
}

/** The seeded row an operation's `{id}` names, so a wrongly accepted input would show in the stored state. */
function seededIdFor(path: string): string {
  if (path.startsWith("/v1/decisions/")) return seeded.decisionId;
  if (path.startsWith("/v1/keys/")) return seeded.keyId;
  if (path.startsWith("/v1/policies/")) return seeded.policyId;
  return seededUuid();
}

function validQuery(op: Operation): URLSearchParams {
  const query = new URLSearchParams();
  for (const p of op.parameters) if (p.in === "query" && p.required) query.set(p.name, String(validValue(p.schema)));
  return query;
}
const withQuery = (path: string, query: URLSearchParams) => (query.size > 0 ? `${path}?${query}` : path);
// Ids take `id`; a policy's `{version}` takes its first version, so a well-formed request names a real row.
const fillPath = (path: string, id: string) => path.replace(/\{([^}]+)\}/g, (_, name: string) => (name === "version" ? "1" : id));

function pathCases(op: Operation, as: Role): Case[] {
  if (!op.path.includes("{")) return [];
  return pick(HOSTILE_PATH_SEGMENTS, as === "admin" ? HOSTILE_PATH_SEGMENTS.length : 4).map((segment) => ({
    label: `path ${segment.slice(0, 40)}`,
    method: op.method,
    path: withQuery(op.path.replace(/\{[^}]+\}/g, segment), validQuery(op)),
    as,
    mustReject: !/^[0-9a-fA-F-]{36}$/.test(segment),
  }));
}

function queryCases(op: Operation, as: Role): Case[] {
  const path = fillPath(op.path, seededUuid()); // a well-formed id that names nothing: no long-poll can hang
  const cases: Case[] = [];
  for (const p of op.parameters.filter((p) => p.in === "query")) {
    const values =
      p.name === "cursor"
        ? HOSTILE_CURSORS.map(({ cursor, valid }) => ({ value: cursor, mustReject: !valid }))
        : pick(HOSTILE_QUERY, as === "admin" ? HOSTILE_QUERY.length : 4).map((value) => ({ value, mustReject: false }));
    for (const { value, mustReject } of values) {
      const query = validQuery(op);
      query.delete(p.name);
      const url = `${path}?${query}${query.size ? "&" : ""}${p.name}=${value}`;
      cases.push({ label: `?${p.name}=${value.slice(0, 40)}`, method: op.method, path: url, as, mustReject });
    }
    const query = validQuery(op);
    query.set(p.name, String(validValue(p.schema)));
    query.append(p.name, String(validValue(p.schema)));
    cases.push({ label: `?${p.name} twice`, method: op.method, path: withQuery(path, query), as, mustReject: false });
  }
  cases.push({
    label: "unknown query parameter",
    method: op.method,
    path: `${withQuery(path, validQuery(op))}${validQuery(op).size ? "&" : "?"}zz%00=1`,
    as,
    mustReject: false,
  });
  return cases;
}

function bodyCases(op: Operation, as: Role): Case[] {
  if (!op.body || op.method === "GET") return [];
  const schema = resolve(op.body.schema);
  const properties = schema.properties ?? {};
  const base = validValue(schema) as Record<string, unknown>;
  const json = { "Content-Type": "application/json" };
  const at = (mustReject: boolean) => withQuery(fillPath(op.path, mustReject ? seededIdFor(op.path) : seededUuid()), validQuery(op));
  const whole = (
    label: string,
    body: string | Uint8Array<ArrayBuffer> | FormData,
    headers: Record<string, string> = json,
    mustReject = true,
  ): Case => ({
    label,
    method: op.method,
    path: at(mustReject),
    as,
    headers,
    body,
    mustReject,
  });
  const baseText = toJsonText(base);
  const utf8 = new TextEncoder().encode(baseText);
  const withBytes = (bytes: number[]) => {
    // invalid UTF-8 inside the first string value
    const quote = baseText.indexOf('":"') + 3;
    return quote > 2 ? new Uint8Array([...utf8.slice(0, quote), ...bytes, ...utf8.slice(quote)]) : new Uint8Array([...utf8, ...bytes]);
  };
  const form = new FormData();
  for (const [k, v] of Object.entries(base)) form.set(k, typeof v === "string" ? v : JSON.stringify(v));
  const cases: Case[] = [
    whole("body []", "[]"),
    whole('body "str"', '"str"'),
    whole("body null", "null"),
    whole("body 42", "42"),
    whole("body [{}]", "[{}]"),
    whole("malformed JSON", '{"a":'),
    whole("trailing garbage", `${baseText}xyz`),
    whole("empty body, JSON content type", ""),
    whole("200,000-level array body", nested(200_000).text),
    whole("10,000-level object body", nestedObjects(10_000).text),
    whole("body over the size limit", JSON.stringify({ padding: "x".repeat(1_100_000) })),
    whole("invalid UTF-8 (0xff)", withBytes([0xff, 0xfe])),
    whole("invalid UTF-8 (overlong /)", withBytes([0xc0, 0xaf])),
    whole("UTF-8 encoded surrogate", withBytes([0xed, 0xa0, 0x80])),
    whole("text/plain JSON", baseText, { "Content-Type": "text/plain" }),
    whole("no content type", baseText, {}),
    whole("form data", form, {}),
    whole("urlencoded", new URLSearchParams(base as Record<string, string>).toString(), {
      "Content-Type": "application/x-www-form-urlencoded",
    }),
    whole("JSON with a bogus charset", baseText, { "Content-Type": "application/json; charset=utf-16" }, false),
    whole("unknown field", toJsonText({ ...base, zz_unknown: 1 })),
    whole("NUL key", toJsonText({ ...base, "\u0000": 1 })),
    whole("__proto__ key", `{"__proto__":{"admin":true}${baseText === "{}" ? "}" : `,${baseText.slice(1)}`}`),
  ];
  for (const name of schema.required ?? []) {
    const { [name]: _, ...rest } = base;
    cases.push(whole(`missing ${name}`, toJsonText(rest)));
  }
  for (const [name, fieldSchema] of Object.entries(properties)) {
    const field = resolve(fieldSchema);
    const type = typeOf(field);
    for (const hostile of pick(HOSTILE_JSON, as === "admin" ? 9 : 3)) {
      const maxLength = field.maxLength ?? Number.POSITIVE_INFINITY;
      const tooLong = type === "string" && typeof hostile.value === "string" && hostile.value.length > maxLength;
      const nullable = Array.isArray(field.type) && field.type.includes("null");
      const mustReject = Boolean(hostile.alwaysInvalid || (hostile.invalidFor?.(type) && !(nullable && hostile.value === null)) || tooLong);
      cases.push(whole(`${name}=${hostile.label}`, toJsonText({ ...base, [name]: hostile.value }), json, mustReject));
    }
    // Nested fields (a batch's events, a record's values) get the hostile strings too.
    const items = field.items ? resolve(field.items) : undefined;
    if (items?.properties && Array.isArray(base[name])) {
      for (const inner of Object.keys(items.properties)) {
        const hostile = pick(HOSTILE_JSON, 1)[0]!;
        const item = { ...(base[name] as Record<string, unknown>[])[0], [inner]: hostile.value };
        const innerType = typeOf(resolve(items.properties[inner]!));
        cases.push(
          whole(
            `${name}[0].${inner}=${hostile.label}`,
            toJsonText({ ...base, [name]: [item] }),
            json,
            Boolean(hostile.alwaysInvalid || hostile.invalidFor?.(innerType)),
          ),
        );
        cases.push(whole(`${name}[0].${inner}=NUL`, toJsonText({ ...base, [name]: [{ ...item, [inner]: "a\u0000" }] })));
      }
    }
  }
  return cases;
}

// ── The run ─────────────────────────────────────────────────────────────────────────────────────
async function storedState() {
  const { db } = t.deps.database;
  return JSON.stringify({
    decision: await db.select().from(decisions).where(eq(decisions.id, seeded.decisionId)),
    key: await db.select().from(apiKeys).where(eq(apiKeys.id, seeded.keyId)),
    events: await db.select().from(telemetryEvents).where(inArray(telemetryEvents.id, seeded.eventIds)).orderBy(telemetryEvents.id),
    snapshot: await db.select().from(telemetrySnapshots).where(eq(telemetrySnapshots.id, seeded.snapshotId)),
    policy: await db.select().from(policies).where(eq(policies.id, seeded.policyId)),
    versions: await db.select().from(policyVersions).where(eq(policyVersions.policyId, seeded.policyId)),
  });
}

let before = "";
let operations: Operation[] = [];

beforeAll(async () => {
  // With a signing secret, callback URLs go through the SSRF guard instead of a flat 422.
  t = await startTestApp({ env: { WEBHOOK_SIGNING_SECRET: "fuzz-signing-secret-0123456789abcdef" } });
  const decision = await t.request("/v1/decisions", {
    method: "POST",
    as: "service",
    json: { kind: "deploy", title: "fuzz seed", payload: { service: "api", version: 3 } },
  });
  expect(decision.status).toBe(201);
  seeded.decisionId = ((await decision.json()) as { id: string }).id;
  const key = await t.request("/v1/keys", { method: "POST", as: "admin", json: { name: "fuzz-target", role: "operator" } });
  expect(key.status).toBe(201);
  seeded.keyId = ((await key.json()) as { id: string }).id;
  const occurred = new Date(Date.now() - 60_000).toISOString();
  const events = await t.request("/v1/telemetry/events", {
    method: "POST",
    as: "service",
    json: { events: seeded.eventIds.map((id) => ({ id, type: "fuzz.seed", source: "fuzz", severity: "info", occurred_at: occurred })) },
  });
  expect(events.status).toBe(202);
  const snapshot = await t.request("/v1/telemetry/snapshots", {
    method: "POST",
    as: "service",
    json: { source: "fuzz", metrics: { cpu: 0.5 } },
  });
  expect(snapshot.status).toBe(201);
  seeded.snapshotId = ((await snapshot.json()) as { id: string }).id;
  // A shadow rule: hostile edits of it must change nothing, and it never decides the seeded decisions.
  const policy = await t.request("/v1/policies", {
    method: "POST",
    as: "admin",
    json: { name: "fuzz seed", expression: 'decision.kind == "fuzz.never" && payload.amount < 10', outcome: "approve", state: "shadow" },
  });
  expect(policy.status).toBe(201);
  seeded.policyId = ((await policy.json()) as { id: string }).id;
  before = await storedState();

  const doc = (await (await t.request("/openapi.json")).json()) as Parameters<typeof operationsOf>[0] & {
    components: { schemas: Record<string, Schema> };
  };
  components = doc.components.schemas;
  operations = operationsOf(doc);
});

afterAll(async () => {
  await t?.close();
});

describe("hostile input on every operation of /openapi.json", () => {
  test("the document lists the operations the fuzzer covers", () => {
    // A route added later is fuzzed automatically; this only guards against reading an empty document.
    expect(operations.length).toBeGreaterThanOrEqual(25);
    expect(operations.filter((op) => op.body).length).toBeGreaterThanOrEqual(8);
  });

  test("the generated baseline of every operation passes validation, so mutations reach the handlers", async () => {
    const refused: string[] = [];
    for (const op of operations) {
      const body = op.body && op.method !== "GET" ? toJsonText(validValue(op.body.schema)) : undefined;
      const path = withQuery(fillPath(op.path, seededUuid()), validQuery(op));
      const response = await fetch(t.url + path, {
        method: op.method,
        headers: { "X-API-Key": t.keys.admin, ...(body ? { "Content-Type": "application/json" } : {}) },
        body,
      });
      const streaming = response.headers.get("content-type")?.startsWith("text/event-stream");
      if (streaming) await response.body?.cancel();
      const text = streaming ? "" : await response.text();
      if (
        response.status >= 500 ||
        /"code":"(validation_failed|malformed_json|json_too_deep|invalid_cursor|unsupported_media_type)"/.test(text)
      ) {
        refused.push(`${op.method} ${path}: ${response.status} ${text.slice(0, 200)}`);
      }
    }
    expect(refused).toEqual([]);
  });

  test("path parameters", async () => {
    const cases = operations.flatMap((op) => callersOf(op).flatMap((as) => pathCases(op, as)));
    expect(cases.length).toBeGreaterThan(50);
    expect(await runAll(cases)).toEqual([]);
  });

  test("query parameters", async () => {
    const cases = operations.flatMap((op) => callersOf(op).flatMap((as) => queryCases(op, as)));
    expect(cases.length).toBeGreaterThan(100);
    expect(await runAll(cases)).toEqual([]);
  });

  test("JSON bodies and content types", async () => {
    const cases = operations.flatMap((op) => callersOf(op).flatMap((as) => bodyCases(op, as)));
    expect(cases.length).toBeGreaterThan(300);
    expect(await runAll(cases)).toEqual([]);
  });
});

/** A raw HTTP/1.1 exchange: fetch refuses to send the malformed header lines these tests need. */
function rawRequest(head: string): Promise<string> {
  const { hostname, port } = new URL(t.url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => socket.write(head));
    let answer = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk) => {
      answer += chunk;
    });
    socket.on("end", () => resolve(answer));
    socket.on("error", reject);
    socket.setTimeout(5000, () => socket.destroy(new Error("raw request timed out")));
  });
}

const SAFE_REQUEST_ID = /^[A-Za-z0-9_=-]{1,128}$/;
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/;

describe("hostile headers", () => {
  test("a huge header value and many headers are refused or ignored, never a 5xx", async () => {
    const huge = await fetch(`${t.url}/v1/decisions`, { headers: { "X-API-Key": t.keys.admin, "X-Fuzz": "a".repeat(64 * 1024) } });
    await huge.body?.cancel();
    expect(huge.status).toBeGreaterThanOrEqual(400);
    expect(huge.status).toBeLessThan(500);

    const headers = new Headers({ "X-API-Key": t.keys.admin });
    for (let i = 0; i < 90; i++) headers.set(`X-Fuzz-${i}`, `value-${i}`);
    const many = await fetch(`${t.url}/v1/decisions?limit=1`, { headers });
    await many.body?.cancel();
    expect(many.status).toBeLessThan(500);
  });

  test("an Idempotency-Key that is 10 KB or holds control characters is a 400 and creates nothing", async () => {
    const body = JSON.stringify({ kind: "deploy", title: "idempotency fuzz", payload: {} });
    const send = (key: string) =>
      fetch(`${t.url}/v1/decisions`, {
        method: "POST",
        headers: { "X-API-Key": t.keys.service, "Content-Type": "application/json", "Idempotency-Key": key },
        body,
      });
    for (const key of ["k".repeat(10 * 1024), "key with spaces", "kl\u00fcssel", "a\tb", "\u007f"]) {
      const response = await send(key);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("validation_failed");
    }
    // Other control characters never reach the app: the HTTP parser refuses the request line by itself.
    for (const key of ["key\u0001with", "\u001b[31m"]) {
      const response = await send(key);
      const text = await response.text();
      expect(response.status).toBe(400);
      if (text) expect((JSON.parse(text) as { error: { code: string } }).error.code).toBe("validation_failed");
    }
    const listed = await t.request("/v1/decisions?limit=500", { as: "admin" });
    const titles = ((await listed.json()) as { data: { title: string }[] }).data.map((d) => d.title);
    expect(titles).not.toContain("idempotency fuzz");
  });

  test("X-Request-Id injection attempts are replaced, never echoed", async () => {
    for (const id of ["<script>alert(1)</script>", "a b", "x".repeat(129), "id;drop", "ü-latin1", "abc%0d%0aSet-Cookie:%20x=1"]) {
      const response = await fetch(`${t.url}/health/live`, { headers: { "X-Request-Id": id } });
      await response.body?.cancel();
      expect(response.status).toBe(200);
      const echoed = response.headers.get("x-request-id") ?? "";
      expect(echoed).toMatch(SAFE_REQUEST_ID);
      expect(echoed).not.toBe(id);
      expect(response.headers.get("set-cookie")).toBeNull();
    }
    // Raw newlines: the header ends at the line break; what follows is never reflected as a header.
    for (const injection of ["abc\r\nSet-Cookie: injected=1", "abc\nSet-Cookie: injected=1", "abc\rSet-Cookie: injected=1"]) {
      const answer = await rawRequest(`GET /health/live HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${injection}\r\nConnection: close\r\n\r\n`);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
      expect(status).toBeGreaterThanOrEqual(200);
      expect(status).toBeLessThan(500);
      const responseHead = answer.split("\r\n\r\n")[0]!;
      expect(responseHead).not.toMatch(/set-cookie: injected/i);
      const echoed = /^x-request-id: (.*)$/im.exec(responseHead)?.[1];
      if (echoed !== undefined) expect(echoed).toMatch(SAFE_REQUEST_ID);
    }
    const logged = t.logs.filter((line) => line.msg === "request").map((line) => String(line.request_id));
    expect(logged.every((id) => SAFE_REQUEST_ID.test(id))).toBe(true);
  });

  test("a garbage traceparent starts a new trace instead of failing", async () => {
    const garbage = [
      "garbage",
      "00-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-zzzzzzzzzzzzzzzz-01",
      `00-${"0".repeat(32)}-${"1".repeat(16)}-01`,
      `ff-${"a".repeat(32)}-${"b".repeat(16)}-01`,
      `00-${"a".repeat(32)}-${"b".repeat(16)}-01-extra`,
      `00-${"A".repeat(32)}-${"B".repeat(16)}-01`,
      "0".repeat(8000),
    ];
    for (const traceparent of garbage) {
      const response = await fetch(`${t.url}/v1/decisions?limit=1`, {
        headers: { "X-API-Key": t.keys.admin, traceparent, tracestate: "x".repeat(4000) },
      });
      await response.body?.cancel();
      expect(response.status).toBe(200);
      const answered = response.headers.get("traceparent") ?? "";
      expect(answered).toMatch(TRACEPARENT);
      expect(answered.slice(3, 35)).not.toBe(traceparent.slice(3, 35));
    }
  });

  test("a garbage Last-Event-ID is a 400 on the event stream", async () => {
    for (const lastEventId of ["abc", "-1", "1e3", "9".repeat(16), "1 2", "0x10"]) {
      const response = await fetch(`${t.url}/v1/decisions/stream`, {
        headers: { "X-API-Key": t.keys.readonly, "Last-Event-ID": lastEventId },
      });
      expect([lastEventId, response.status]).toEqual([lastEventId, 400]);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("invalid_last_event_id");
    }
  });

  test("a chunked body over the size limit is a 413, not an unhandled error", async () => {
    const chunk = new TextEncoder().encode(`{"kind":"deploy","title":"t","payload":"${"y".repeat(600_000)}`);
    const tail = new TextEncoder().encode(`${"y".repeat(600_000)}"}`);
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(chunk);
        controller.enqueue(tail);
        controller.close();
      },
    });
    const response = await fetch(`${t.url}/v1/decisions`, {
      method: "POST",
      headers: { "X-API-Key": t.keys.service, "Content-Type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(413);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
  });

  test("garbage credentials are a 401 JSON error", async () => {
    const credentials: Record<string, string>[] = [
      { "X-API-Key": "arb_".padEnd(53, "\u00ff") },
      { "X-API-Key": "k".repeat(8000) },
      { Authorization: "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0." },
      { Authorization: `Bearer ${"a".repeat(6000)}.${"b".repeat(100)}.${"c".repeat(100)}` },
      { Authorization: "Basic Zm9vOmJhcg==" },
    ];
    for (const headers of credentials) {
      const response = await fetch(`${t.url}/v1/decisions`, { headers });
      expect(response.status).toBe(401);
      const body = (await response.json()) as { error: { code: string } };
      expect(body.error.code).toMatch(/^invalid_(key|token)$/);
    }
  });
});

describe("the inputs that used to fail", () => {
  const post = (path: string, body: string, as: Role = "admin") =>
    fetch(t.url + path, { method: "POST", headers: { "X-API-Key": t.keys[as], "Content-Type": "application/json" }, body });
  const errorOf = async (response: Response) => ({
    status: response.status,
    ...((await response.json()) as { error: { code: string; details?: unknown } }).error,
  });

  test("NUL, unpaired surrogates and out-of-range numbers are a 400 naming the field", async () => {
    const decision = (payload: string) => `{"kind":"deploy","title":"t","payload":${payload}}`;
    expect(await errorOf(await post("/v1/decisions", decision('"a\\u0000b"')))).toMatchObject({
      status: 400,
      code: "validation_failed",
      details: [{ path: "json.payload", code: "invalid_string" }],
    });
    expect(await errorOf(await post("/v1/decisions", decision('{"x":["\\ud800"]}')))).toMatchObject({
      details: [{ path: "json.payload.x.0", code: "invalid_string" }],
    });
    expect(await errorOf(await post("/v1/decisions", decision('{"k\\u0000":1}')))).toMatchObject({
      status: 400,
      code: "validation_failed",
    });
    expect(await errorOf(await post("/v1/decisions", decision("[1e309]")))).toMatchObject({
      details: [{ path: "json.payload.0", code: "too_big" }],
    });
    expect(await errorOf(await post("/v1/telemetry/snapshots", '{"source":"s","metrics":{"cpu\\u0000":1}}'))).toMatchObject({
      status: 400,
    });
  });

  test("bodies nested deeper than 64 levels, or not UTF-8, are refused before any parser recurses", async () => {
    const deep = `{"kind":"deploy","title":"t","payload":${"[".repeat(10_000)}${"]".repeat(10_000)}}`;
    expect(await errorOf(await post("/v1/decisions", deep))).toMatchObject({ status: 400, code: "json_too_deep" });
    const shallowEnough = `{"kind":"deploy","title":"t","payload":${"[".repeat(60)}${"]".repeat(60)}}`;
    expect((await post("/v1/decisions", shallowEnough)).status).toBe(201);
    const bytes = new Uint8Array([...new TextEncoder().encode('{"reason":"'), 0xff, ...new TextEncoder().encode('"}')]);
    const response = await fetch(`${t.url}/v1/decisions/${seeded.decisionId}/reject`, {
      method: "POST",
      headers: { "X-API-Key": t.keys.admin, "Content-Type": "application/json" },
      body: bytes,
    });
    expect(await errorOf(response)).toMatchObject({ status: 400, code: "malformed_json" });
  });

  test("a __proto__ key is a 400, not silently dropped from what is stored and hashed", async () => {
    const payload = await post("/v1/decisions", '{"kind":"deploy","title":"t","payload":{"__proto__":{"rm":"-rf"},"a":1}}');
    expect(await errorOf(payload)).toMatchObject({ status: 400, details: [{ path: "json.payload.__proto__", code: "invalid_key" }] });
    const metrics = await post("/v1/telemetry/snapshots", '{"source":"s","metrics":{"__proto__":5,"a":1}}');
    expect(await errorOf(metrics)).toMatchObject({ status: 400, details: [{ path: "json.metrics.__proto__" }] });
    // Any other key is data like any other and round-trips.
    const created = await post("/v1/decisions", '{"kind":"deploy","title":"t","payload":{"constructor":{"prototype":1}}}');
    expect(((await created.json()) as { payload: unknown }).payload).toEqual({ constructor: { prototype: 1 } });
  });

  test("a JSON null payload is stored and read back as null", async () => {
    const created = await post("/v1/decisions", '{"kind":"deploy","title":"null payload","payload":null}', "service");
    expect(created.status).toBe(201);
    const { id, payload, payload_hash } = (await created.json()) as { id: string; payload: unknown; payload_hash: string };
    expect(payload).toBeNull();
    expect(payload_hash).toBe(new Bun.CryptoHasher("sha256").update("null").digest("hex"));
    const read = (await (await t.request(`/v1/decisions/${id}`, { as: "admin" })).json()) as { payload: unknown };
    expect(read.payload).toBeNull();
  });

  test("date-times outside the years 0001-9999 (UTC) are a 400, in queries, bodies and cursors", async () => {
    for (const path of [
      "/v1/decisions?created_after=0000-01-01T00:00:00Z",
      "/v1/decisions?created_before=9999-12-31T23:59:59-23:59",
      "/v1/telemetry/events?from=0001-01-01T00:00:00%2B14:00",
      "/v1/audit/auth?since=0000-01-01T00:00:00Z",
      `/v1/keys?cursor=${cursorAt(-62_198_755_200_000, seededUuid())}`,
    ]) {
      const response = await t.request(path, { as: "admin" });
      expect([path, response.status]).toEqual([path, 400]);
    }
    const key = await post("/v1/keys", '{"name":"far future","role":"readonly","expires_at":"9999-12-31T23:59:59-23:59"}');
    expect(await errorOf(key)).toMatchObject({ status: 400, code: "validation_failed" });
  });

  test("a NUL in a query value is a 400 before it reaches a statement", async () => {
    const from = new Date(Date.now() - 600_000).toISOString();
    const to = new Date(Date.now() - 60_000).toISOString();
    const response = await t.request(`/v1/telemetry/snapshots?source=fuzz&metric=a%00b&from=${from}&to=${to}&bucket=5m`, { as: "admin" });
    expect(await errorOf(response)).toMatchObject({ status: 400, details: [{ path: "query.metric", code: "invalid_string" }] });
  });

  test("a series of values near the double maximum averages without overflowing", async () => {
    const now = Date.now();
    for (let i = 1; i <= 3; i++) {
      const at = new Date(now - i * 1000).toISOString();
      const stored = await post("/v1/telemetry/snapshots", JSON.stringify({ source: "huge", at, metrics: { v: 1.7e308 } }), "service");
      expect(stored.status).toBe(201);
    }
    const from = new Date(now - 3_600_000).toISOString();
    const response = await t.request(
      `/v1/telemetry/snapshots?source=huge&metric=v&from=${from}&to=${new Date(now).toISOString()}&bucket=1h`,
      {
        as: "admin",
      },
    );
    expect(response.status).toBe(200);
    const { data } = (await response.json()) as { data: { avg: number; max: number; count: number }[] };
    expect(data).toEqual([expect.objectContaining({ avg: 1.7e308, max: 1.7e308, count: 3 })]);
  });

  test("a forged cursor id holding NUL is a 400 on a text-keyed list", async () => {
    const response = await t.request(`/v1/telemetry/events?cursor=${cursorAt(1_700_000_000_000, "a\u0000b")}`, { as: "admin" });
    expect(await errorOf(response)).toMatchObject({ status: 400, code: "invalid_cursor" });
  });

  test("unknown fields in key and token bodies are refused, not dropped", async () => {
    // A misspelt `permissions` used to mint a key (or token) with every permission of the role.
    const key = await post("/v1/keys", '{"name":"typo","role":"operator","permisions":["decisions:read"]}');
    expect(await errorOf(key)).toMatchObject({ status: 400, code: "validation_failed", details: [{ code: "unrecognized_keys" }] });
    const token = await post("/v1/auth/token", '{"permisions":["decisions:read"]}', "operator");
    expect(await errorOf(token)).toMatchObject({ status: 400, code: "validation_failed" });
  });
});

describe("after the whole run", () => {
  test("the seeded rows are unchanged and no request ended in an unhandled error", async () => {
    expect(await storedState()).toBe(before);
    expect(t.logs.filter((line) => line.msg === "unhandled error")).toEqual([]);
  });
});
