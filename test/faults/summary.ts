import { expect } from "bun:test";
import { inArray } from "drizzle-orm";
import type { Database } from "../../src/db/client";
import { decisions, telemetryEvents } from "../../src/db/schema";

/**
 * The counted outcome of one injected fault. Each fault test fills one in, and `reportFault` prints
 * it as one line (`fault-summary …`, so a CI log can be grepped for every figure) before asserting
 * that nothing acknowledged was lost or duplicated and no 5xx came outside the injected outage.
 */
export interface FaultSummary {
  fault: string;
  requests: number;
  /** 503s while the injected outage lasted: the documented answer there */
  outage503s: number;
  /** 5xx answered outside the injected outage (must be 0) */
  serverErrorsOutside: number;
  /** writes answered 2xx, looked up in the database */
  acknowledgedWrites: number;
  lost: number;
  duplicates: number;
  /** from the end of the fault to service restored, and what "restored" means here */
  recovery: { ms: number; what: string };
}

const tier = () => (process.env.DATABASE_URL ? "real tier" : "embedded tier");

export function reportFault(s: FaultSummary) {
  console.log(
    `fault-summary [${tier()}] ${s.fault}: ${s.requests} requests, ${s.outage503s} 503 during the outage, ` +
      `${s.serverErrorsOutside} 5xx outside it, ${s.acknowledgedWrites} acknowledged writes, ${s.lost} lost, ${s.duplicates} duplicates, ` +
      `recovery ${Math.round(s.recovery.ms)} ms (${s.recovery.what})`,
  );
  expect({ serverErrorsOutside: s.serverErrorsOutside, lost: s.lost, duplicates: s.duplicates }).toEqual({
    serverErrorsOutside: 0,
    lost: 0,
    duplicates: 0,
  });
  expect(s.requests).toBeGreaterThan(0);
}

/**
 * Looks acknowledged writes up in the database: decisions by their title (each test gives every
 * create a title of its own, so a create stored twice shows as two rows) with the id the answer
 * named, telemetry events by their id.
 */
export async function storedCopies(
  db: Database,
  acknowledged: { decisions?: Map<string, string>; events?: string[] },
): Promise<{ writes: number; lost: number; duplicates: number }> {
  const titles = [...(acknowledged.decisions?.keys() ?? [])];
  const eventIds = acknowledged.events ?? [];
  let lost = 0;
  let duplicates = 0;
  if (titles.length) {
    const rows = await db.select({ id: decisions.id, title: decisions.title }).from(decisions).where(inArray(decisions.title, titles));
    const byTitle = new Map<string, string[]>();
    for (const row of rows) byTitle.set(row.title, [...(byTitle.get(row.title) ?? []), row.id]);
    for (const [title, id] of acknowledged.decisions!) {
      const ids = byTitle.get(title) ?? [];
      if (!ids.includes(id)) lost++;
      if (ids.length > 1) duplicates += ids.length - 1;
    }
  }
  if (eventIds.length) {
    const rows = await db.select({ id: telemetryEvents.id }).from(telemetryEvents).where(inArray(telemetryEvents.id, eventIds));
    const stored = new Set(rows.map((r) => r.id));
    for (const id of eventIds) if (!stored.has(id)) lost++;
    duplicates += rows.length - stored.size;
  }
  return { writes: titles.length + eventIds.length, lost, duplicates };
}
