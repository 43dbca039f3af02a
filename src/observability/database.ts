import type { Meter } from "@opentelemetry/api";
import type { DatabaseHandle } from "../db/client";
import { DB_DURATION_BUCKETS } from "./metrics";

interface PreparedQuery {
  getQuery(): { sql: string };
  execute(...args: unknown[]): Promise<unknown>;
  all(...args: unknown[]): Promise<unknown>;
}
interface InstrumentableSession {
  prepareQuery(...args: unknown[]): PreparedQuery;
  transaction(...args: unknown[]): Promise<unknown>;
}

const OPERATIONS = new Set(["select", "insert", "update", "delete", "with", "copy"]);

/** The statement's leading keyword: a bounded label, never the SQL text (which could carry values). */
function operationName(sqlText: string): string {
  const keyword = /^\s*\(?\s*([a-z]+)/i.exec(sqlText)?.[1]?.toLowerCase() ?? "other";
  return OPERATIONS.has(keyword) ? keyword : "other";
}

/**
 * Times every statement the handle's Drizzle database runs (`db.client.operation.duration`, seconds,
 * by operation) and whole transactions (operation `transaction`: the statements inside one run on
 * a transaction-scoped session, so they are counted as the transaction's time) and COPYs (`copy`), and counts the
 * statements in flight, which is how much of the pool is in use (`arbiter.db.queries.active`
 * against `db.client.connection.max`). It wraps this one handle's session, so apps sharing a
 * process keep their own figures.
 */
export function instrumentDatabase(handle: DatabaseHandle, meter: Meter, poolMax: number): void {
  const duration = meter.createHistogram("db.client.operation.duration", {
    description: "Duration of database statements and transactions",
    unit: "s",
    advice: { explicitBucketBoundaries: DB_DURATION_BUCKETS },
  });
  const active = meter.createUpDownCounter("arbiter.db.queries.active", { description: "Database statements and transactions in flight" });
  meter
    .createObservableGauge("db.client.connection.max", { description: "Connections the pool may open" })
    .addCallback((result) => result.observe(handle.kind === "pglite" ? 1 : poolMax, { "db.system.name": "postgresql" }));

  const timed = async <T>(operation: string, run: () => Promise<T>): Promise<T> => {
    const attributes = { "db.system.name": "postgresql", "db.operation.name": operation };
    const started = performance.now();
    active.add(1);
    try {
      return await run();
    } finally {
      active.add(-1);
      duration.record((performance.now() - started) / 1000, attributes);
    }
  };

  const session = (handle.db as unknown as { session: InstrumentableSession }).session;
  const prepareQuery = session.prepareQuery.bind(session);
  session.prepareQuery = (...args) => {
    const prepared = prepareQuery(...args);
    const operation = operationName(prepared.getQuery().sql);
    const execute = prepared.execute.bind(prepared);
    const all = prepared.all.bind(prepared);
    prepared.execute = (...a) => timed(operation, () => execute(...a));
    prepared.all = (...a) => timed(operation, () => all(...a));
    return prepared;
  };
  const transaction = session.transaction.bind(session);
  session.transaction = (...args) => timed("transaction", () => transaction(...args));
  // COPY goes to the driver directly, past Drizzle's session.
  const copyIn = handle.copyIn?.bind(handle);
  if (copyIn) handle.copyIn = (...args) => timed("copy", () => copyIn(...args));
}
