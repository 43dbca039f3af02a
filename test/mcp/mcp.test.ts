import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { holdLimiterOf } from "../../src/decisions/holds";
import { notifierOf } from "../../src/decisions/service";
import { verifyReceipt } from "../../src/sdk";
import { type JsonBody, samplePayload } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";
import { clientAs } from "../sdk/support";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const ALLOWED_ORIGIN = "https://agents.example";
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { CORS_ALLOWED_ORIGINS: ALLOWED_ORIGIN } });
});
afterAll(() => t.close());

/** An MCP session through the official SDK's client, authenticated with `key`. */
async function connect(key: string): Promise<Client> {
  const client = new Client({ name: "test-agent", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`), { requestInit: { headers: { "X-API-Key": key } } }));
  return client;
}

/** A tool call's structured result. */
async function call(client: Client, name: string, args: Record<string, unknown>): Promise<{ isError: boolean; result: JsonBody }> {
  const answer = await client.callTool({ name, arguments: args });
  return { isError: answer.isError === true, result: answer.structuredContent as JsonBody };
}

const jwks = async () => (await fetch(`${t.url}/.well-known/jwks.json`)).json();
const decisionInput = (kind = `mcp.${crypto.randomUUID().slice(0, 8)}`) => ({
  kind,
  title: "Scale checkout to 12 replicas",
  payload: samplePayload,
  idempotency_key: `task-${crypto.randomUUID()}`,
});

/** A raw JSON-RPC POST to /mcp, as a client that is not the SDK would send it. */
const post = (body: string, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${t.url}/mcp`, {
    method: "POST",
    signal,
    headers: { "Content-Type": "application/json", Accept: "application/json, text/event-stream", "X-API-Key": t.keys.service, ...headers },
    body,
  });
const initialize = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
});

describe("MCP server", () => {
  test("an agent lists the tools, asks for approval, an operator approves over REST, the call answers approved with a receipt", async () => {
    const agent = await connect(t.keys.service);
    try {
      const { tools } = await agent.listTools();
      expect(tools.map((tool) => tool.name).sort()).toEqual([
        "consume_approval",
        "get_decision",
        "list_my_decisions",
        "request_approval",
        "wait_for_decision",
      ]);
      // The input schema is the REST API's CreateDecision plus the idempotency key and the wait.
      const requestTool = tools.find((tool) => tool.name === "request_approval")!;
      expect(requestTool.inputSchema.required).toEqual(expect.arrayContaining(["kind", "title", "payload", "idempotency_key"]));
      expect(Object.keys(requestTool.inputSchema.properties ?? {})).toEqual(
        expect.arrayContaining(["priority", "required_approvals", "expires_in", "on_timeout", "wait_seconds"]),
      );

      const input = decisionInput();
      const before = notifierOf(t.deps).waiting;
      const asking = call(agent, "request_approval", { ...input, wait_seconds: 20 });
      while (notifierOf(t.deps).waiting <= before) await Bun.sleep(5);
      const [pending] = (await clientAs(t, "admin").decisions.list({ kind: input.kind })).data;
      await clientAs(t, "operator").decisions.approve(pending!.id, { reason: "capacity is fine" });

      const { isError, result } = await asking;
      expect(isError).toBe(false);
      expect(result).toMatchObject({ decision_id: pending!.id, status: "approved", approved: true, payload_hash: pending!.payload_hash });
      const verified = await verifyReceipt(result.receipt, { jwks: await jwks(), payload: samplePayload, decisionId: pending!.id });
      expect(verified.claims.decided_by).toEqual({
        type: "people",
        people: [{ key_id: t.keyIds.operator, person_id: t.keyIds.operator, name: "test-operator" }],
      });

      // Asking again with the same idempotency key answers the same decision.
      const again = await call(agent, "request_approval", { ...input, wait_seconds: 0 });
      expect(again.result.decision_id).toBe(pending!.id);

      const consumed = await call(agent, "consume_approval", { id: pending!.id });
      expect(consumed.result).toMatchObject({ status: "approved", approved: false, decision: { consumed_at: expect.any(String) } });
      const twice = await call(agent, "consume_approval", { id: pending!.id });
      expect(twice).toMatchObject({ isError: true, result: { error: { code: "already_consumed" } } });
    } finally {
      await agent.close();
    }
  });

  test("pending is answered as not approved; wait, get and list follow the same decision", async () => {
    const agent = await connect(t.keys.service);
    try {
      const input = decisionInput();
      const first = await call(agent, "request_approval", { ...input, wait_seconds: 0 });
      expect(first.result).toMatchObject({ status: "pending", approved: false, receipt: null });
      expect(first.result.note).toContain("NOT APPROVAL");
      const id = first.result.decision_id;

      const waited = await call(agent, "wait_for_decision", { id, wait_seconds: 1 });
      expect(waited.result).toMatchObject({ status: "pending", approved: false });
      await clientAs(t, "operator").decisions.reject(id, "not now");
      const read = await call(agent, "get_decision", { id });
      expect(read.result).toMatchObject({ status: "rejected", approved: false });
      expect((await verifyReceipt(read.result.receipt, { jwks: await jwks(), payload: samplePayload })).claims.outcome).toBe("rejected");

      const listed = await call(agent, "list_my_decisions", { kind: input.kind });
      expect(listed.result.decisions).toEqual([expect.objectContaining({ decision_id: id, status: "rejected", approved: false })]);
      // Another service's decision is not found, as over REST.
      const other = await clientAs(t, "admin").keys.create({ name: "other-agent", role: "service" });
      const stranger = await connect(other.key);
      try {
        expect(await call(stranger, "get_decision", { id })).toMatchObject({ isError: true, result: { error: { code: "not_found" } } });
        expect((await call(stranger, "list_my_decisions", { kind: input.kind })).result.decisions).toEqual([]);
      } finally {
        await stranger.close();
      }
    } finally {
      await agent.close();
    }
  });

  test("a key's permissions decide which tools it sees and may call", async () => {
    const admin = clientAs(t, "admin");
    const telemetryOnly = await admin.keys.create({ name: "telemetry-agent", role: "service", permissions: ["telemetry:write"] });
    const readOnly = await admin.keys.create({ name: "reading-agent", role: "service", permissions: ["decisions:read"] });

    const blind = await connect(telemetryOnly.key);
    try {
      expect((await blind.listTools()).tools).toEqual([]);
      // The SDK answers a call to a tool the server did not register as a tool error.
      const refused = await blind.callTool({ name: "request_approval", arguments: decisionInput() });
      expect(refused.isError).toBe(true);
      expect(JSON.stringify(refused.content)).toContain("request_approval not found");
      expect(await clientAs(t, "admin").decisions.list({ requester: telemetryOnly.id })).toMatchObject({ data: [] });
    } finally {
      await blind.close();
    }
    const reader = await connect(readOnly.key);
    try {
      expect((await reader.listTools()).tools.map((tool) => tool.name).sort()).toEqual([
        "get_decision",
        "list_my_decisions",
        "wait_for_decision",
      ]);
    } finally {
      await reader.close();
    }
  });

  test("tool input is validated by the REST schemas; a refusal is a tool error, never a fault", async () => {
    const agent = await connect(t.keys.service);
    try {
      const badKind = await agent.callTool({ name: "request_approval", arguments: { ...decisionInput(), kind: "Not A Kind" } }).then(
        (answer) => ({ isError: answer.isError, text: JSON.stringify(answer.content) }),
        (error: Error) => ({ isError: true, text: error.message }),
      );
      expect(badKind.isError).toBe(true);
      expect(badKind.text).toContain("kind");
      const tooLong = await call(agent, "request_approval", { ...decisionInput(), expires_in: 10_000_000 });
      expect(tooLong).toMatchObject({ isError: true, result: { error: { code: "validation_failed" } } });
      const unknown = await call(agent, "get_decision", { id: crypto.randomUUID() });
      expect(unknown).toMatchObject({ isError: true, result: { error: { code: "not_found" } } });
    } finally {
      await agent.close();
    }
  });

  test("a wait ends when the client goes away: its hold on the key's long-poll budget is given back at once", async () => {
    const agent = await connect(t.keys.service);
    const { result } = await call(agent, "request_approval", { ...decisionInput(), wait_seconds: 0 });
    await agent.close();
    const holds = holdLimiterOf(t.deps);
    const gone = new AbortController();
    const waiting = post(
      JSON.stringify({
        jsonrpc: "2.0",
        id: 3,
        method: "tools/call",
        params: { name: "wait_for_decision", arguments: { id: result.decision_id, wait_seconds: 50 } },
      }),
      { "Mcp-Protocol-Version": "2025-06-18" },
      gone.signal,
    ).catch(() => undefined);
    while (holds.held(t.keyIds.service) === 0) await Bun.sleep(5);
    const cutAt = Date.now();
    gone.abort();
    await waiting;
    while (holds.held(t.keyIds.service) > 0) await Bun.sleep(5);
    expect(Date.now() - cutAt).toBeLessThan(2_000);
  });

  test("Origin is validated: another site's page is refused, an allowed origin and non-browser clients are served", async () => {
    const refused = await post(initialize, { Origin: "https://evil.example" });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: -32000, data: { code: "origin_not_allowed" } } });
    // Refused before authentication: no credential is even looked at.
    expect((await post(initialize, { Origin: "null", "X-API-Key": "wrong" })).status).toBe(403);

    const allowed = await post(initialize, { Origin: ALLOWED_ORIGIN });
    expect(allowed.status).toBe(200);
    expect(((await allowed.json()) as JsonBody).result.serverInfo.name).toBe("arbiter");
    expect((await post(initialize)).status).toBe(200);
  });

  test("malformed and unauthenticated requests get JSON-RPC errors with 4xx statuses, never a 5xx", async () => {
    const parse = await post("{not json");
    expect(parse.status).toBe(400);
    expect(((await parse.json()) as JsonBody).error.code).toBe(-32700);

    const invalid = await post(JSON.stringify({ jsonrpc: "2.0", id: 1 }));
    expect(invalid.status).toBe(400);
    expect((await invalid.json()) as JsonBody).toMatchObject({ jsonrpc: "2.0", error: { code: expect.any(Number) } });

    const unknownMethod = await post(JSON.stringify({ jsonrpc: "2.0", id: 7, method: "no/such/method" }), {
      "Mcp-Protocol-Version": "2025-06-18",
    });
    expect(unknownMethod.status).toBeLessThan(500);
    expect(((await unknownMethod.json()) as JsonBody).error.code).toBe(-32601);

    const anonymous = await post(initialize, { "X-API-Key": "" });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toContain("Bearer");
    expect(await anonymous.json()).toMatchObject({ jsonrpc: "2.0", error: { data: { code: "unauthenticated" } } });
    const badKey = await post(initialize, { "X-API-Key": "arb_live_not-a-real-key" });
    expect(badKey.status).toBe(401);
    expect(((await badKey.json()) as JsonBody).jsonrpc).toBe("2.0");

    const get = await fetch(`${t.url}/mcp`, { headers: { "X-API-Key": t.keys.service, Accept: "text/event-stream" } });
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    expect(((await get.json()) as JsonBody).jsonrpc).toBe("2.0");

    const bodies = ["", "null", "[]", "[1,2]", '"text"', "{}", '{"jsonrpc":"2.0","method":"tools/call","id":1,"params":"x"}', "\u0000"];
    for (const body of bodies) {
      const res = await post(body, { "Mcp-Protocol-Version": "2025-06-18" });
      expect(res.status).toBeLessThan(500);
      if (res.status >= 400) expect(((await res.json()) as JsonBody).jsonrpc).toBe("2.0");
    }
    const wrongType = await post(initialize, { "Content-Type": "text/plain" });
    expect(wrongType.status).toBeGreaterThanOrEqual(400);
    expect(wrongType.status).toBeLessThan(500);
  });
});
