import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createSharedReads } from "../../src/decisions/shared-reads";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

/** A load whose calls are counted and finished by hand, with the value the "database" holds when each started. */
function manualLoad() {
  let value = 0;
  const started: { id: string; seen: number; finish: () => void; fail: (error: Error) => void }[] = [];
  const load = (id: string) =>
    new Promise<number>((resolve, reject) => {
      const seen = value;
      started.push({ id, seen, finish: () => resolve(seen), fail: reject });
    });
  return { load, started, set: (v: number) => (value = v) };
}
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("shared fresh reads", () => {
  test("callers that ask together share one read; callers during a read share the next, started after it", async () => {
    const db = manualLoad();
    const read = createSharedReads(db.load);
    const first = [read("a"), read("a"), read("a")];
    await tick();
    expect(db.started).toHaveLength(1);

    // A change commits, then more waiters register while the first read runs: they must not get its answer.
    db.set(1);
    const later = [read("a"), read("a")];
    await tick();
    expect(db.started).toHaveLength(1);
    db.started[0]!.finish();
    expect(await Promise.all(first)).toEqual([0, 0, 0]);
    await tick();
    expect(db.started).toHaveLength(2);
    db.started[1]!.finish();
    expect(await Promise.all(later)).toEqual([1, 1]);
  });

  test("different ids read independently, and a failed read fails only its own callers", async () => {
    const db = manualLoad();
    const read = createSharedReads(db.load);
    const a = read("a");
    const b = read("b");
    await tick();
    expect(db.started.map((s) => s.id)).toEqual(["a", "b"]);
    const after = read("a");
    db.started[0]!.fail(new Error("connection lost"));
    db.started[1]!.finish();
    await expect(a).rejects.toThrow("connection lost");
    expect(await b).toBe(0);
    await tick();
    expect(db.started).toHaveLength(3);
    db.started[2]!.finish();
    expect(await after).toBe(0);
  });
});
