import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { and, count, eq } from "drizzle-orm";
import type { Database } from "../../src/db/client";
import { decisions, policies, policyGeneration } from "../../src/db/schema";
import { rulesInForce } from "../../src/policies/in-force";
import { createDecision, type JsonBody } from "../decisions/helpers";
import { startTestApp, type TestApp } from "../helpers/app";
import { openSharedTestDatabase } from "../helpers/db";

setDefaultTimeout(30_000);

/**
 * Each process keeps the rules in force it read, and a decision is stored only under the policy
 * generation those rules were read at. Two replicas here: two handles (two pools on real
 * PostgreSQL, two Drizzle databases over one embedded instance), so each keeps its own copy.
 */
let a: TestApp;
let b: TestApp;
let closeDatabases: () => Promise<void>;

beforeAll(async () => {
  const { first, second, close } = await openSharedTestDatabase();
  closeDatabases = close;
  a = await startTestApp({ database: first });
  b = await startTestApp({ database: second });
}, 60_000);
afterAll(async () => {
  await a.close();
  await b.close();
  await closeDatabases();
});

async function savePolicy(app: TestApp, body: Record<string, unknown>): Promise<JsonBody> {
  const res = await app.request("/v1/policies", { method: "POST", as: "admin", json: { state: "enforce", ...body } });
  if (res.status !== 201) throw new Error(`create policy answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as JsonBody;
}

const drop = { kind: "db.drop", title: "Drop the orders table", payload: { table: "orders" } };
const generationOf = async (app: TestApp) =>
  (await app.deps.database.db.select().from(policyGeneration).where(eq(policyGeneration.id, 1)))[0]!.generation;

describe("rules in force, kept per process", () => {
  test("a rule saved on one replica applies to the other's very next decision, though it holds the older rules", async () => {
    // A reads (and keeps) the rules as they are: none.
    expect((await createDecision(a, drop)).status).toBe("pending");
    const kept = await rulesInForce(a.deps.database.db);
    expect(kept.rules).toEqual([]);

    const rule = await savePolicy(b, { name: "no drops", expression: 'decision.kind == "db.drop"', outcome: "deny", reason: "never" });
    // A still holds the older rules: the database refuses the decision under them, A reads again.
    expect(await rulesInForce(a.deps.database.db)).toBe(kept);
    const denied = await createDecision(a, drop);
    expect(denied).toMatchObject({ status: "rejected", decided_by: "policy", policy_id: rule.id, policy_version: 1 });
    expect((await rulesInForce(a.deps.database.db)).generation).toBe(await generationOf(a));

    // Disabled on B: A's next decision waits for people again.
    const disabled = await b.request(`/v1/policies/${rule.id}/disable`, { method: "POST", as: "admin" });
    expect(disabled.status).toBe(200);
    expect((await createDecision(a, drop)).status).toBe("pending");
  });

  test("a write to the policies by hand raises the generation too", async () => {
    const rule = await savePolicy(a, {
      name: "drops need two",
      expression: 'decision.kind == "db.drop"',
      outcome: "require",
      required_approvals: 2,
    });
    expect((await createDecision(a, drop)).required_approvals).toBe(2);
    const before = await generationOf(a);
    await b.deps.database.db.update(policies).set({ deletedAt: new Date() }).where(eq(policies.id, rule.id));
    expect(await generationOf(a)).toBeGreaterThan(before);
    expect((await createDecision(a, drop)).required_approvals).toBe(1);
  });

  test("rules read while nothing changes are kept: no re-read, same generation", async () => {
    const first = await rulesInForce(b.deps.database.db);
    await createDecision(b, drop);
    await createDecision(b, drop);
    expect(await rulesInForce(b.deps.database.db)).toBe(first);
  });
});

/**
 * Runs `beforeEach` just before every decision-creating statement `db` executes, on the same path the
 * app takes (its prepared statement). Here, to have another replica change the policies between the
 * moment a decision's rules were read and the moment it is stored, as often as a test needs.
 */
function beforeEveryCreate(db: Database, beforeEach: () => Promise<void>) {
  const session = db._.session as unknown as {
    prepareQuery: (query: { sql: string }, ...rest: unknown[]) => { execute: (values: unknown) => Promise<unknown> };
  };
  const prepare = session.prepareQuery.bind(session);
  session.prepareQuery = (query, ...rest) => {
    const prepared = prepare(query, ...rest);
    if (!/^\s*with updated as \(\s*insert into "decisions"/.test(query.sql)) return prepared;
    const execute = prepared.execute.bind(prepared);
    prepared.execute = async (values) => {
      await beforeEach();
      return execute(values);
    };
    return prepared;
  };
}

describe("policies changing while a decision is created", () => {
  test("refused under five generations in a row: 503 policies_changing, nothing stored; outlasting the changes: stored once", async () => {
    const { first, second, close } = await openSharedTestDatabase();
    const creator = await startTestApp({ database: first });
    const editor = await startTestApp({ database: second });
    try {
      let edits = 0;
      let intercepted = 0;
      beforeEveryCreate(first.db, async () => {
        intercepted++;
        if (edits === 0) return;
        edits--;
        // An operator on another replica saves a rule (matching nothing here) while this one evaluates.
        await savePolicy(editor, {
          name: `unrelated ${crypto.randomUUID()}`,
          expression: 'decision.kind == "other"',
          outcome: "deny",
          reason: "not here",
        });
      });
      const storedWithTitle = async (title: string) =>
        (
          await first.db
            .select({ n: count() })
            .from(decisions)
            .where(and(eq(decisions.title, title), eq(decisions.kind, drop.kind)))
        )[0]!.n;

      edits = 5;
      const refused = await creator.request("/v1/decisions", {
        method: "POST",
        as: "service",
        json: { ...drop, title: "refused five times" },
      });
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("1");
      expect(((await refused.json()) as JsonBody).error.code).toBe("policies_changing");
      expect(intercepted).toBe(5);
      expect(await storedWithTitle("refused five times")).toBe(0);

      edits = 2;
      intercepted = 0;
      const stored = await createDecision(creator, { ...drop, title: "refused twice" });
      expect(stored.status).toBe("pending");
      expect(intercepted).toBe(3);
      expect(await storedWithTitle("refused twice")).toBe(1);
      // The creator now holds the rules of the latest generation.
      expect((await rulesInForce(first.db)).generation).toBe(await generationOf(creator));
    } finally {
      await creator.close();
      await editor.close();
      await close();
    }
  });
});
