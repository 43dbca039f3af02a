/**
 * The soak's end check: every write the server acknowledged is in the database exactly once, and
 * nothing the load did not acknowledge is there. Read straight from PostgreSQL, not through the API.
 */
import postgres from "postgres";
import type { Ledger } from "./soak-load";

export interface LedgerCheck {
  /** acknowledged writes looked up: creates + approvals + rejections + consumes + telemetry events */
  writes_checked: number;
  missing: number;
  duplicates: number;
  /** rows or audit events the load never got a 2xx for */
  unacknowledged: number;
  problems: string[];
}

export async function checkLedger(databaseUrl: string, ledger: Ledger): Promise<LedgerCheck> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  const problems: string[] = [];
  let missing = 0;
  let duplicates = 0;
  let unacknowledged = 0;
  const note = (kind: "missing" | "duplicate" | "unacknowledged", what: string) => {
    if (kind === "missing") missing++;
    else if (kind === "duplicate") duplicates++;
    else unacknowledged++;
    if (problems.length < 20) problems.push(`${kind}: ${what}`);
  };
  try {
    // Decisions, by the Idempotency-Key each create was sent with.
    const rows = await sql<{ key: string | null; id: string }[]>`select idempotency_key as key, id::text as id from decisions`;
    const byKey = new Map<string, string[]>();
    for (const row of rows) {
      if (!row.key?.startsWith("soak-")) continue;
      byKey.set(row.key, [...(byKey.get(row.key) ?? []), row.id]);
    }
    for (const [key, id] of ledger.creates) {
      const ids = byKey.get(key) ?? [];
      if (ids.length === 0 || !ids.includes(id)) note("missing", `decision ${id} (Idempotency-Key ${key})`);
      if (ids.length > 1) note("duplicate", `Idempotency-Key ${key}: ${ids.length} decisions`);
    }
    for (const key of byKey.keys()) if (!ledger.creates.has(key)) note("unacknowledged", `decision with Idempotency-Key ${key}`);

    // Verdicts and consumes, by their audit events (one per change, written in the change's transaction).
    const events = await sql<{ id: string; type: string; n: number }[]>`
      select decision_id::text as id, type, count(*)::int as n from decision_events
      where type in ('created', 'approved', 'rejected', 'consumed') group by 1, 2`;
    const counts = new Map(events.map((e) => [`${e.type}:${e.id}`, e.n]));
    const expect = (type: string, ids: Iterable<string>) => {
      const acknowledged = new Set(ids);
      for (const id of acknowledged) {
        const n = counts.get(`${type}:${id}`) ?? 0;
        if (n === 0) note("missing", `${type} event of decision ${id}`);
        if (n > 1) note("duplicate", `${n} ${type} events of decision ${id}`);
      }
      for (const e of events) if (e.type === type && !acknowledged.has(e.id)) note("unacknowledged", `${type} event of decision ${e.id}`);
    };
    expect("created", ledger.creates.values());
    expect("approved", ledger.approved);
    expect("rejected", ledger.rejected);
    expect("consumed", ledger.consumed);
    const consumedRows = await sql<{ id: string }[]>`select id::text as id from decisions where consumed_at is not null`;
    const consumedAt = new Set(consumedRows.map((r) => r.id));
    for (const id of ledger.consumed) if (!consumedAt.has(id)) note("missing", `consumed_at of decision ${id}`);

    // Telemetry events, by the ids the batches carried (the primary key: a duplicate cannot be stored, a loss can).
    const stored = await sql<{ id: string }[]>`select id from telemetry_events where id like 'soak-%'`;
    const storedIds = new Set(stored.map((r) => r.id));
    const acknowledgedIds = new Set(ledger.telemetryIds);
    if (acknowledgedIds.size !== ledger.telemetryIds.length)
      note("duplicate", `${ledger.telemetryIds.length - acknowledgedIds.size} telemetry ids acknowledged twice`);
    for (const id of acknowledgedIds) if (!storedIds.has(id)) note("missing", `telemetry event ${id}`);
    for (const id of storedIds) if (!acknowledgedIds.has(id)) note("unacknowledged", `telemetry event ${id}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
  const writes = ledger.creates.size + ledger.approved.size + ledger.rejected.size + ledger.consumed.size + ledger.telemetryIds.length;
  return { writes_checked: writes, missing, duplicates, unacknowledged, problems };
}
