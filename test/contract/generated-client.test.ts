import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import createClient from "openapi-fetch";
import { startTestApp, type TestApp } from "../helpers/app";
import type { paths } from "./arbiter-api.gen";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * The document is what clients in other languages are generated from. Here the TypeScript one:
 * types from openapi-typescript (committed, so `bun run typecheck` checks this file against them),
 * requests through openapi-fetch, a decision's whole lifecycle against the real app.
 */
const GENERATED = join(import.meta.dir, "arbiter-api.gen.ts");

let t: TestApp;
let dir: string;
beforeAll(async () => {
  t = await startTestApp();
  dir = await mkdtemp(join(tmpdir(), "arbiter-client-"));
}, 60_000);
afterAll(async () => {
  await t.close();
  await rm(dir, { recursive: true, force: true });
});

const clientWith = (key: string) => createClient<paths>({ baseUrl: t.url, headers: { "X-API-Key": key } });

describe("client generated from the OpenAPI document", () => {
  test("the committed types are those generated from the live document", async () => {
    const document = join(dir, "openapi.json");
    const out = join(dir, "arbiter-api.gen.ts");
    await Bun.write(document, await (await t.request("/openapi.json")).text());
    const child = Bun.spawn([process.execPath, join(import.meta.dir, "../../scripts/openapi-types.ts"), document, out], { stderr: "pipe" });
    expect(await child.exited).toBe(0);
    const fresh = await Bun.file(out).text();
    // When this fails: `bun run openapi:types http://127.0.0.1:8100/openapi.json test/contract/arbiter-api.gen.ts`.
    expect(fresh === (await Bun.file(GENERATED).text())).toBe(true);
  });

  test("runs a decision through its whole lifecycle", async () => {
    const admin = clientWith(t.keys.admin);
    const key = await admin.POST("/v1/keys", { body: { name: "generated-client", role: "service" } });
    expect(key.response.status).toBe(201);
    const service = clientWith(key.data!.key);
    const operator = clientWith(t.keys.operator);

    const created = await service.POST("/v1/decisions", {
      params: { header: { "idempotency-key": `client-${crypto.randomUUID()}` } },
      body: { kind: "deploy", title: "Ship 1.2 to production", payload: { service: "api", version: "1.2" }, priority: "high" },
    });
    expect(created.response.status).toBe(201);
    const id = created.data!.id;
    expect(created.data!.status).toBe("pending");

    const queue = await operator.GET("/v1/decisions/pending", { params: { query: { limit: 50 } } });
    expect(queue.data!.data.map((d) => d.id)).toContain(id);

    // The requester long-polls while the operator approves.
    const waited = service.GET("/v1/decisions/{id}", { params: { path: { id }, query: { wait: 10 } } });
    const approved = await operator.POST("/v1/decisions/{id}/approve", {
      params: { path: { id } },
      body: { reason: "change window open" },
    });
    expect(approved.data!.status).toBe("approved");
    const verdict = await waited;
    expect(verdict.data!.status).toBe("approved");
    expect(verdict.data!.resolution_reason).toBe("change window open");

    const consumed = await service.POST("/v1/decisions/{id}/consume", { params: { path: { id } } });
    expect(consumed.data!.consumed_at).not.toBeNull();

    // A second consume is a documented error, typed by the shared error schema.
    const again = await service.POST("/v1/decisions/{id}/consume", { params: { path: { id } } });
    expect(again.response.status).toBe(409);
    expect(again.error!.error.code).toBeString();

    const listed = await service.GET("/v1/decisions", { params: { query: { status: "approved" } } });
    expect(listed.data!.data.map((d) => d.id)).toContain(id);
  });
});
