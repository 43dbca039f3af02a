import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Cache } from "../../src/cache/types";
import { waitFor } from "../foundation/support";
import { startTestApp, type TestApp } from "../helpers/app";
import { openTestCache } from "../helpers/cache";
import { act, createDecision, sharedDatabase } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/**
 * Two replicas over one database and one shared cache. Each replica keeps its own copies of the
 * decisions it read (emptied when it hears of a change) in front of the shared cache. The writes a
 * replica makes to the shared cache can be held, to put the interleavings that once left a replica
 * serving the old state of a decided decision for the cache's whole TTL (30 s) on purpose.
 */
type Write = "set" | "setIfAbsent" | "delete";

interface Hold {
  /** holds this replica's writes of decision keys by these operations until release() */
  hold(...writes: Write[]): void;
  release(): void;
  /** writes waiting behind the hold */
  readonly held: number;
}

function holdable(inner: Cache): Cache & Hold {
  let holding = new Set<Write>();
  let gate: Promise<void> | undefined;
  let open = () => {};
  let held = 0;
  const pass = async (write: Write, key: string) => {
    if (!holding.has(write) || !key.startsWith("decision:") || !gate) return;
    held++;
    await gate;
    held--;
  };
  return {
    ...inner,
    kind: inner.kind,
    async set(key, value, ttlMs) {
      await pass("set", key);
      return inner.set(key, value, ttlMs);
    },
    async setIfAbsent(key, value, ttlMs) {
      await pass("setIfAbsent", key);
      return inner.setIfAbsent(key, value, ttlMs);
    },
    async delete(key) {
      await pass("delete", key);
      return inner.delete(key);
    },
    close: async () => {}, // the shared cache is closed once, by the test
    hold(...writes) {
      holding = new Set(writes);
      gate = new Promise((resolve) => (open = resolve));
    },
    release() {
      holding = new Set();
      gate = undefined;
      open();
    },
    get held() {
      return held;
    },
  };
}

let shared: Awaited<ReturnType<typeof sharedDatabase>>;
let sharedCache: Cache;
let cacheA: Cache & Hold;
let cacheB: Cache & Hold;
let replicaA: TestApp;
let replicaB: TestApp;

beforeAll(async () => {
  shared = await sharedDatabase();
  sharedCache = openTestCache();
  cacheA = holdable(sharedCache);
  cacheB = holdable(sharedCache);
  replicaA = await startTestApp({ database: shared.first, cache: cacheA });
  replicaB = await startTestApp({ database: shared.second, cache: cacheB });
});

afterAll(async () => {
  await replicaA.close();
  await replicaB.close();
  await sharedCache.close();
  await shared.close();
});

/** What replica B answers for the decision, read by the operator (who may see every decision). */
const statusOnB = async (id: string) => {
  const res = await replicaB.request(`/v1/decisions/${id}`, { as: "operator" });
  expect(res.status).toBe(200);
  return ((await res.json()) as { status: string }).status;
};

describe("decision caches across replicas", () => {
  test("a replica hears of a change only once the shared cache no longer holds the old row", async () => {
    const d = await createDecision(replicaA);
    expect(await statusOnB(d.id)).toBe("pending"); // B and the shared cache now hold the pending row
    expect(await (await replicaA.request(`/v1/decisions/${d.id}`, { as: "operator" })).json()).toMatchObject({ status: "pending" });

    cacheA.hold("set", "delete"); // A's invalidation of the shared copy is slow to land
    const approving = act(replicaA, d.id, "approve", "operator");
    await waitFor(() => cacheA.held > 0, "the approval's cache write to be held");
    // Meanwhile B keeps answering from its copies. Had it heard of the change already, it would have
    // dropped its own copy and taken the old row back from the shared cache, and kept it.
    for (let i = 0; i < 10; i++) {
      expect(await statusOnB(d.id)).toBe("pending");
      await Bun.sleep(20);
    }
    cacheA.release();
    expect((await approving).status).toBe(200);
    await waitFor(async () => (await statusOnB(d.id)) === "approved", "replica B to answer approved", 3_000);
    // …and it stays so (its copy is not an old one that a late notification could not clear).
    for (let i = 0; i < 5; i++) expect(await statusOnB(d.id)).toBe("approved");
  });

  test("a read that loaded the row before a change cannot put the old row back in the shared cache", async () => {
    const d = await createDecision(replicaA);
    cacheB.hold("set", "setIfAbsent"); // B's fill of the shared cache, after its database read, is slow to land
    const reading = statusOnB(d.id); // loads the pending row, then tries to fill the shared cache
    await waitFor(() => cacheB.held > 0, "replica B's cache fill to be held");
    expect((await act(replicaA, d.id, "approve", "operator")).status).toBe(200);
    cacheB.release();
    expect(await reading).toBe("pending"); // read before the approval: correct for its time
    // The late fill met the changed marker and stored nothing: neither replica serves the old row.
    await waitFor(async () => (await statusOnB(d.id)) === "approved", "replica B to answer approved", 3_000);
    for (let i = 0; i < 5; i++) {
      expect(await statusOnB(d.id)).toBe("approved");
      const onA = await replicaA.request(`/v1/decisions/${d.id}`, { as: "operator" });
      expect(((await onA.json()) as { status: string }).status).toBe("approved");
    }
    const stored = await sharedCache.get(`decision:${d.id}`);
    expect(stored === null || !stored.includes('"pending"')).toBe(true);
  });
});
