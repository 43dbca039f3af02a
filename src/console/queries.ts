import { asc, eq, inArray } from "drizzle-orm";
import type { Database } from "../db/client";
import { apiKeys, decisionEvents, decisions } from "../db/schema";

/**
 * The few reads the console needs besides the decisions service's: key names for the people and
 * services it shows, and a decision's audit trail. Callers have already been allowed to see the rows.
 */

export interface HistoryEntry {
  type: string;
  actorKeyId: string | null;
  /** the acting key's name, when the event has an actor */
  actorName: string | null;
  reason: string | null;
  at: string;
}

/** A decision's audit trail with the actors' key names, oldest first. */
export async function decisionHistory(db: Database, decisionId: string): Promise<HistoryEntry[]> {
  const rows = await db
    .select({
      type: decisionEvents.type,
      actorKeyId: decisionEvents.actorKeyId,
      actorName: apiKeys.name,
      reason: decisionEvents.reason,
      at: decisionEvents.createdAt,
    })
    .from(decisionEvents)
    .leftJoin(apiKeys, eq(apiKeys.id, decisionEvents.actorKeyId))
    .where(eq(decisionEvents.decisionId, decisionId))
    .orderBy(asc(decisionEvents.id));
  return rows.map((row) => ({ ...row, at: row.at.toISOString() }));
}

/** Key id → key name, for the keys given (unknown ids are left out). */
export async function keyNames(db: Database, keyIds: readonly string[]): Promise<Map<string, string>> {
  if (keyIds.length === 0) return new Map();
  const rows = await db
    .select({ id: apiKeys.id, name: apiKeys.name })
    .from(apiKeys)
    .where(inArray(apiKeys.id, [...new Set(keyIds)]));
  return new Map(rows.map((row) => [row.id, row.name]));
}

/** Queue rows with the approvals recorded so far and the requester's key name (one query each). */
export async function withQueueDetails<T extends { id: string; requester_key_id: string }>(
  db: Database,
  items: readonly T[],
): Promise<(T & { approvals: number; requester_name: string | null })[]> {
  if (items.length === 0) return [];
  const [rows, names] = await Promise.all([
    db
      .select({ id: decisions.id, approvals: decisions.approverPeople })
      .from(decisions)
      .where(
        inArray(
          decisions.id,
          items.map((item) => item.id),
        ),
      ),
    keyNames(
      db,
      items.map((item) => item.requester_key_id),
    ),
  ]);
  const approvals = new Map(rows.map((row) => [row.id, row.approvals.length]));
  return items.map((item) => ({
    ...item,
    approvals: approvals.get(item.id) ?? 0,
    requester_name: names.get(item.requester_key_id) ?? null,
  }));
}
