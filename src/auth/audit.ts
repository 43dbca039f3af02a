import { and, desc, eq, gte, lt, type SQL } from "drizzle-orm";
import type { Database } from "../db/client";
import { uuidv7 } from "../db/ids";
import { type BatchedDeleteOptions, deleteOlderThan } from "../db/retention";
import { authEvents } from "../db/schema";
import type { Clock } from "../deps";
import { afterCursor, toPage } from "../http/pagination";
import type { Logger } from "../observability/logger";

export const AUTH_ACTIONS = [
  "authenticate",
  "key.create",
  "key.revoke",
  "key.rotate",
  "key.assign",
  "token.issue",
  "token.revoke",
  "operator.create",
  "operator.update",
  "operator.disable",
  "route.create",
  "route.update",
] as const;
export type AuthAction = (typeof AUTH_ACTIONS)[number];

/** Where a request came from, recorded with every event (never its credentials). */
export interface RequestMeta {
  address?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
}

export interface AuthEvent extends RequestMeta {
  action: AuthAction;
  outcome: "success" | "failure";
  reason?: string | null;
  actorKeyId?: string | null;
  targetId?: string | null;
}

const MAX_BUFFERED = 10_000;
const FLUSH_DELAY_MS = 200;
const FLUSH_BATCH = 200;

export interface AuthAudit {
  /** Per-request authentication outcomes: logged now, inserted in batches off the request path. */
  record(event: AuthEvent): void;
  /** Key and token changes: inserted inside the caller's transaction, so the change and its audit row commit together. */
  write(tx: Database, event: AuthEvent): Promise<void>;
  /** Writes everything buffered; reads of the audit trail call it first so this replica's events are visible. */
  flush(): Promise<void>;
}

export function createAuthAudit(deps: { db: Database; clock: Clock; logger: Logger }): AuthAudit {
  let buffer: (typeof authEvents.$inferInsert)[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let flushing: Promise<void> = Promise.resolve();
  let dropped = 0;

  const toRow = (event: AuthEvent): typeof authEvents.$inferInsert => {
    const now = deps.clock.now();
    return {
      id: uuidv7(now.getTime()),
      createdAt: now,
      action: event.action,
      outcome: event.outcome,
      reason: event.reason ?? null,
      actorKeyId: event.actorKeyId ?? null,
      targetId: event.targetId ?? null,
      address: event.address ?? null,
      userAgent: event.userAgent?.slice(0, 512) ?? null,
      requestId: event.requestId ?? null,
    };
  };
  const log = (event: AuthEvent) => {
    // Per-request successes are debug: the request log line already names the key.
    const level = event.outcome === "failure" ? "warn" : event.action === "authenticate" ? "debug" : "info";
    if (!deps.logger.enabled(level)) return;
    // The same fields as the row, snake_case, minus the free-text user agent.
    const fields = Object.fromEntries(
      Object.entries(event)
        .filter(([name, value]) => value !== null && value !== undefined && name !== "userAgent")
        .map(([name, value]) => [name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), value]),
    );
    deps.logger[level]("auth event", fields);
  };

  const writeBuffered = async () => {
    timer = undefined;
    while (buffer.length > 0) {
      const batch = buffer.slice(0, FLUSH_BATCH);
      buffer = buffer.slice(batch.length);
      try {
        await deps.db.insert(authEvents).values(batch);
      } catch (error) {
        dropped += batch.length;
        deps.logger.error("auth audit write failed", { error: (error as Error).message, lost_events: batch.length });
      }
    }
    if (dropped > 0) {
      deps.logger.warn("auth audit events dropped", { count: dropped });
      dropped = 0;
    }
  };
  const flush = () => {
    flushing = flushing.then(writeBuffered);
    return flushing;
  };

  return {
    record(event) {
      log(event);
      if (buffer.length >= MAX_BUFFERED) {
        // The database is not keeping up (or is down): keep the newest events, count the rest.
        buffer.shift();
        dropped++;
      }
      buffer.push(toRow(event));
      if (buffer.length >= FLUSH_BATCH) void flush();
      else if (!timer) {
        timer = setTimeout(() => void flush(), FLUSH_DELAY_MS);
        (timer as { unref?: () => void }).unref?.();
      }
    },
    async write(tx, event) {
      await tx.insert(authEvents).values(toRow(event));
      log(event);
    },
    flush,
  };
}

export interface AuthEventQuery {
  limit: number;
  cursor?: string;
  actor_key_id?: string;
  action?: AuthAction;
  outcome?: "success" | "failure";
  since?: Date;
  until?: Date;
}

export async function listAuthEvents(db: Database, query: AuthEventQuery) {
  const conditions: (SQL | undefined)[] = [
    afterCursor(authEvents.createdAt, authEvents.id, query.cursor),
    query.actor_key_id ? eq(authEvents.actorKeyId, query.actor_key_id) : undefined,
    query.action ? eq(authEvents.action, query.action) : undefined,
    query.outcome ? eq(authEvents.outcome, query.outcome) : undefined,
    query.since ? gte(authEvents.createdAt, query.since) : undefined,
    query.until ? lt(authEvents.createdAt, query.until) : undefined,
  ];
  const rows = await db
    .select()
    .from(authEvents)
    .where(and(...conditions))
    .orderBy(desc(authEvents.createdAt), desc(authEvents.id))
    .limit(query.limit + 1);
  return toPage(rows, query.limit, (row) => ({
    id: row.id,
    created_at: row.createdAt.toISOString(),
    action: row.action,
    outcome: row.outcome,
    reason: row.reason,
    actor_key_id: row.actorKeyId,
    target_id: row.targetId,
    address: row.address,
    user_agent: row.userAgent,
    request_id: row.requestId,
  }));
}

/**
 * Deletes authentication events older than `retentionDays`, in bounded batches. The application
 * role may only append to the audit trail (drizzle/0001, ops/postgres/roles.sql), so this runs as
 * the admin role, from `bun run audit:retention`, never inside the API process.
 */
export async function deleteExpiredAuthEvents(
  db: Database,
  now: Date,
  options: BatchedDeleteOptions & { retentionDays: number },
): Promise<{ deleted: number; cutoff: Date }> {
  const cutoff = new Date(now.getTime() - options.retentionDays * 86_400_000);
  const deleted = await deleteOlderThan(db, { table: authEvents, id: authEvents.id, time: authEvents.createdAt }, cutoff, options);
  return { deleted, cutoff };
}
