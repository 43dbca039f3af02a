/**
 * Whether an error means the database cannot serve right now (refused or dropped connections, a
 * server shutting down or starting up, a statement cancelled by statement_timeout), as opposed to a bug or a bad statement. Such errors are
 * answered 503 with Retry-After: the request may succeed when the database is back, and the pool
 * reconnects by itself.
 */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  // postgres.js
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  // SQLSTATE: query_canceled (statement_timeout), lock_not_available, admin_shutdown, crash_shutdown,
  // cannot_connect_now, too_many_connections
  "57014",
  "55P03",
  "57P01",
  "57P02",
  "57P03",
  "53300",
]);

/** The error codes (driver codes or SQLSTATEs) on an error and its causes: Drizzle wraps driver errors in DrizzleQueryError.cause. */
export function errorCodes(error: unknown): string[] {
  const codes: string[] = [];
  for (let current = error, depth = 0; current && typeof current === "object" && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    current = (current as { cause?: unknown }).cause;
  }
  return codes;
}

export function isDatabaseUnavailable(error: unknown): boolean {
  return errorCodes(error).some((code) => CONNECTION_CODES.has(code) || code.startsWith("08"));
}

/**
 * The database's storage is full: PostgreSQL's disk_full (SQLSTATE 53100, e.g. `could not extend
 * file`), which PGlite raises too when its data directory's filesystem returns ENOSPC, or the raw
 * ENOSPC/EDQUOT of a write outside a statement, or the embedded database's free-space reserve
 * (src/db/storage-reserve.ts) refusing a write. Nothing already stored is harmed (the failing
 * statement is rolled back) and writes succeed again once space is freed, so it is answered 503
 * with its own code rather than as a fault.
 */
const STORAGE_CODES = new Set(["53100", "ENOSPC", "EDQUOT", "STORAGE_RESERVE"]);

export function isStorageFull(error: unknown): boolean {
  return errorCodes(error).some((code) => STORAGE_CODES.has(code));
}
