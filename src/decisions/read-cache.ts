import { createTtlCache } from "../cache/ttl-cache";
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
  const rows = createTtlCache<DecisionRow>(options);
  let generation = 0;
  return {
    get: (id) => rows.get(id),
    set(id, row, startedAt) {
      if (startedAt === generation) rows.set(id, row);
    },
    forget(id) {
      generation++;
      rows.delete(id);
    },
    get generation() {
      return generation;
    },
  };
}
