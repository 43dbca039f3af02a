import type { DecisionRow } from "../db/schema";

/**
 * This process's copies of recently read decisions, in front of the shared cache: a hit costs a map
 * lookup, no round trip. Used only while the process listens for decision changes, which drop a
 * copy as soon as any replica commits a change to it. A read that raced a change is not kept: the
 * caller takes `generation` before reading and `set` ignores the row when a change arrived since.
 */
export interface LocalDecisionCache {
  get(id: string): DecisionRow | undefined;
  set(id: string, row: DecisionRow, generation: number): void;
  forget(id: string): void;
  /** changes seen so far; a read that started at an older generation may hold a stale row */
  readonly generation: number;
}

export function createLocalDecisionCache(options: { ttlMs: number; maxEntries: number; now: () => number }): LocalDecisionCache {
  const entries = new Map<string, { row: DecisionRow; expiresAt: number }>();
  let generation = 0;
  return {
    get(id) {
      const entry = entries.get(id);
      if (!entry) return undefined;
      if (entry.expiresAt <= options.now()) {
        entries.delete(id);
        return undefined;
      }
      return entry.row;
    },
    set(id, row, startedAt) {
      if (startedAt !== generation || options.ttlMs <= 0) return;
      entries.delete(id);
      entries.set(id, { row, expiresAt: options.now() + options.ttlMs });
      // Oldest first out: a Map iterates in insertion order.
      if (entries.size > options.maxEntries) entries.delete(entries.keys().next().value as string);
    },
    forget(id) {
      generation++;
      entries.delete(id);
    },
    get generation() {
      return generation;
    },
  };
}
