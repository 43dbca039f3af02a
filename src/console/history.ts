import { asc, eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { apiKeys, decisionEvents } from "../db/schema";

export interface HistoryEntry {
  type: string;
  actorKeyId: string | null;
  /** the acting key's name, when the event has an actor */
  actorName: string | null;
  reason: string | null;
  at: string;
}

/** A decision's audit trail with the actors' key names, oldest first (the caller has already been allowed to see the decision). */
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
