import { asc, eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { decisionEvents } from "../db/schema";

export interface HistoryEntry {
  type: string;
  actorKeyId: string | null;
  reason: string | null;
  at: string;
}

/** A decision's audit trail, oldest first, for its console page (the caller has already been allowed to see it). */
export async function decisionHistory(db: Database, decisionId: string): Promise<HistoryEntry[]> {
  const rows = await db
    .select({
      type: decisionEvents.type,
      actorKeyId: decisionEvents.actorKeyId,
      reason: decisionEvents.reason,
      at: decisionEvents.createdAt,
    })
    .from(decisionEvents)
    .where(eq(decisionEvents.decisionId, decisionId))
    .orderBy(asc(decisionEvents.id));
  return rows.map((row) => ({ ...row, at: row.at.toISOString() }));
}
