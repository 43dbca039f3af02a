import { type AnyColumn, sql } from "drizzle-orm";
import type { PgTable } from "drizzle-orm/pg-core";
import { type Database, rowsOf } from "./client";

export interface BatchedDeleteOptions {
  /** rows deleted per statement: each statement is its own short transaction */
  batchSize: number;
  /** a run stops after this many batches, so one run never monopolises the database */
  maxBatches?: number;
}

/**
 * Deletes a table's rows older than `cutoff` in bounded batches, until a batch comes back short.
 * Each batch is one statement that picks its rows with FOR UPDATE SKIP LOCKED, so locks are held
 * only for one batch and processes running it at the same time split the work instead of waiting.
 */
export async function deleteOlderThan(
  db: Database,
  target: { table: PgTable; id: AnyColumn; time: AnyColumn },
  cutoff: Date,
  options: BatchedDeleteOptions,
): Promise<number> {
  const { table, id, time } = target;
  let total = 0;
  for (let batch = 0; batch < (options.maxBatches ?? 1_000); batch++) {
    const result = await db.execute(sql`
      with doomed as (
        select ${id} from ${table} where ${time} < ${cutoff.toISOString()}::timestamptz
        limit ${options.batchSize} for update skip locked)
      delete from ${table} where ${id} in (select id from doomed) returning 1`);
    const deleted = rowsOf(result).length;
    total += deleted;
    if (deleted < options.batchSize) break;
  }
  return total;
}
