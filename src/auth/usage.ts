import { and, desc, eq, gte, lt, type SQL, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { apiKeyUsage } from "../db/schema";
import type { Clock } from "../deps";
import { afterCursor, toPage } from "../http/pagination";
import type { Logger } from "../observability/logger";

/** Usage is counted in windows of this length (the `window_start` of a row is a multiple of it). */
export const USAGE_WINDOW_MS = 60_000;
const FLUSH_DELAY_MS = 5_000;
const FLUSH_BATCH = 500;
/** Distinct (key, window, via) counters held while the database is unreachable; the oldest go first past it. */
const MAX_PENDING = 10_000;

export type CredentialKind = "api_key" | "token";

export interface AuthUsage {
  /** One successful authentication: a map increment, written to `api_key_usage` within FLUSH_DELAY_MS. */
  count(keyId: string, via: CredentialKind): void;
  /** Writes every pending count (reads of usage call it first, and so does shutdown). */
  flush(): Promise<void>;
}

/**
 * Successful authentications aggregated in memory and added to per-minute counters in batches: one
 * upsert per key and minute instead of one audit row per request. Counts are added (`requests +
 * excluded.requests`), so replicas flushing the same window never overwrite each other; a failed
 * write keeps its counts for the next flush.
 */
export function createAuthUsage(deps: { db: Database; clock: Clock; logger: Logger }): AuthUsage {
  let pending = new Map<string, { keyId: string; windowStart: number; via: CredentialKind; requests: number }>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let flushing: Promise<void> = Promise.resolve();

  const restore = (rows: (typeof apiKeyUsage.$inferInsert)[]) => {
    for (const row of rows) add(row.keyId, row.windowStart.getTime(), row.via, row.requests);
  };

  const add = (keyId: string, windowStart: number, via: CredentialKind, requests: number) => {
    const id = `${keyId}|${windowStart}|${via}`;
    const entry = pending.get(id);
    if (entry) {
      entry.requests += requests;
      return;
    }
    if (pending.size >= MAX_PENDING) {
      const oldest = pending.keys().next().value as string;
      pending.delete(oldest);
      deps.logger.warn("auth usage counter dropped: the database is not keeping up", { pending: MAX_PENDING });
    }
    pending.set(id, { keyId, windowStart, via, requests });
    if (!timer) {
      timer = setTimeout(() => void flush(), FLUSH_DELAY_MS);
      (timer as { unref?: () => void }).unref?.();
    }
  };

  const writePending = async () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const rows = [...pending.values()].map((entry) => ({ ...entry, windowStart: new Date(entry.windowStart) }));
    pending = new Map();
    for (let start = 0; start < rows.length; start += FLUSH_BATCH) {
      const batch = rows.slice(start, start + FLUSH_BATCH);
      try {
        await deps.db
          .insert(apiKeyUsage)
          .values(batch)
          .onConflictDoUpdate({
            target: [apiKeyUsage.keyId, apiKeyUsage.windowStart, apiKeyUsage.via],
            set: { requests: sql`${apiKeyUsage.requests} + excluded.requests` },
          });
      } catch (error) {
        deps.logger.error("auth usage write failed; keeping the counts for the next flush", { error: (error as Error).message });
        restore(rows.slice(start));
        return;
      }
    }
  };
  const flush = () => {
    flushing = flushing.then(writePending);
    return flushing;
  };

  return {
    count(keyId, via) {
      const at = deps.clock.now().getTime();
      add(keyId, at - (at % USAGE_WINDOW_MS), via, 1);
    },
    flush,
  };
}

export interface UsageQuery {
  key_id: string;
  limit: number;
  cursor?: string;
  since?: Date;
  until?: Date;
}

/** A key's counters, newest window first; the cursor is keyset on (window_start, via). */
export async function listKeyUsage(db: Database, query: UsageQuery) {
  const conditions: (SQL | undefined)[] = [
    eq(apiKeyUsage.keyId, query.key_id),
    afterCursor(apiKeyUsage.windowStart, apiKeyUsage.via, query.cursor),
    query.since ? gte(apiKeyUsage.windowStart, query.since) : undefined,
    query.until ? lt(apiKeyUsage.windowStart, query.until) : undefined,
  ];
  const rows = await db
    .select()
    .from(apiKeyUsage)
    .where(and(...conditions))
    .orderBy(desc(apiKeyUsage.windowStart), desc(apiKeyUsage.via))
    .limit(query.limit + 1);
  return toPage(
    rows.map((row) => ({ ...row, createdAt: row.windowStart, id: row.via })),
    query.limit,
    (row) => ({ key_id: row.keyId, window_start: row.windowStart.toISOString(), via: row.via, requests: row.requests }),
  );
}
