import { expect, setDefaultTimeout, test } from "bun:test";
import { isUuid, uuidv7 } from "../../src/db/ids";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const timestampOf = (id: string) => Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16);
/**
 * Ids are monotonic per process, so an id never goes below the latest time seen by any test in this
 * process; the times used here sit just above it (and only a second beyond it, so later ids stay true).
 */
const aheadOfEveryIdSoFar = () => Math.max(Date.now(), timestampOf(uuidv7())) + 1_000;

test("uuidv7: RFC 9562 layout, version 7, variant 10, the given millisecond", () => {
  const at = aheadOfEveryIdSoFar();
  const id = uuidv7(at);
  expect(isUuid(id)).toBe(true);
  expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect(timestampOf(id)).toBe(at);
});

test("uuidv7: ids from one process sort in creation order, even within one millisecond", () => {
  const at = aheadOfEveryIdSoFar();
  const ids = Array.from({ length: 5000 }, () => uuidv7(at));
  expect(new Set(ids).size).toBe(ids.length);
  expect([...ids].sort()).toEqual(ids);
  // More ids than the 12-bit counter holds spill into the next millisecond rather than wrap.
  expect(timestampOf(ids.at(-1) as string)).toBeGreaterThan(at);
});

test("uuidv7: after an id far in the future, ids again carry the time they are given", () => {
  const future = Date.now() + 86_400_000;
  uuidv7(future);
  const now = Date.now();
  expect(Math.abs(timestampOf(uuidv7(now)) - now)).toBeLessThan(5);
});

test("isUuid rejects what is not one", () => {
  for (const bad of ["", "x", "0190f0a2-7b3c-7d4e-8f01-23456789abc", "0190f0a2-7b3c-7d4e-8f01-23456789abcz", "' or 1=1 --"]) {
    expect(isUuid(bad)).toBe(false);
  }
});
