import { existsSync, mkdirSync, readdirSync, readFileSync, statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import { finished } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import * as schema from "./schema";

/** The Drizzle database both backends share: services are written against this type only. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface DatabaseHandle {
  readonly kind: "pglite" | "postgres";
  readonly db: Database;
  /** a trivial round trip, for readiness checks */
  ping(): Promise<void>;
  /** LISTEN on a channel; NOTIFY is sent with `select pg_notify(...)`, transactionally, by writers */
  listen(channel: string, onMessage: (payload: string) => void): Promise<() => Promise<void>>;
  migrate(): Promise<void>;
  close(): Promise<void>;
  /** bytes free to the database's files, when they are ours to watch (embedded PGlite with a data directory) */
  freeBytes?(): number;
  /**
   * Streams rows into a table with one `COPY table (columns) FROM STDIN` (text format: `text` is
   * whole lines, fields escaped by copyField, `\N` for NULL). One statement, so all or nothing;
   * it has committed when the promise resolves, and a failure (a unique violation, say) rejects it
   * with the server's error. PostgreSQL only: PGlite has no COPY from the client.
   */
  copyIn?(table: string, columns: readonly string[], text: string): Promise<void>;
}

const COPY_SPECIAL = /[\\\n\r\t]/;
const COPY_SPECIAL_ALL = /[\\\n\r\t]/g;
const COPY_ESCAPES: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };
/**
 * A value as a field of COPY's text format: backslash, newline, carriage return and tab escaped
 * (nothing else is special there; `\N` alone is NULL, and an escaped backslash cannot form it).
 * NUL cannot be sent at all; the input guard refuses it before any route sees it.
 */
export const copyField = (value: string): string =>
  COPY_SPECIAL.test(value) ? value.replace(COPY_SPECIAL_ALL, (ch) => COPY_ESCAPES[ch]!) : value;
/** NULL in COPY's text format */
export const COPY_NULL = "\\N";

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url));

// Many replicas may start at once; the first to take this lock migrates, the others wait for it.
const MIGRATION_LOCK_ID = 7_281_944_107;

/** Rows of `db.execute()`, whose shape differs between postgres.js (array) and PGlite ({ rows }). */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  return ((result as { rows?: T[] }).rows ?? []) as T[];
}

export interface PgliteOptions {
  /** a directory to persist to; omitted → in memory */
  dataDir?: string;
  /** an existing PGlite instance (tests clone a migrated template) */
  instance?: PGlite;
}

/**
 * The embedded database's starting point, made by `bun run db:snapshot`: a data directory with every
 * migration applied. A fresh data directory is loaded from it (about half the time of initdb in
 * WebAssembly, and no migrations to apply); the migrations still run after, so a snapshot that is
 * behind only costs time. One made by another PGlite version is not used.
 */
export const PGLITE_SNAPSHOT = fileURLToPath(new URL("../../drizzle/snapshot/pglite.tar.gz", import.meta.url));
export const PGLITE_SNAPSHOT_MANIFEST = fileURLToPath(new URL("../../drizzle/snapshot/manifest.json", import.meta.url));

/** The installed PGlite's version, from its package.json (not exported by the package: found by walking up from its entry). */
export function pgliteVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.resolve("@electric-sql/pglite")));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "@electric-sql/pglite" && pkg.version) return pkg.version;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error("the PGlite package has no package.json with its version");
    dir = parent;
  }
}

/** What a snapshot was made from: the PGlite version and the migrations applied. */
export function snapshotManifest(version: string) {
  const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta/_journal.json"), "utf8")) as { entries: { tag: string }[] };
  return { pglite: version, migrations: journal.entries.map((entry) => entry.tag) };
}

/** The shipped snapshot when it was made by this PGlite version; otherwise (or when unreadable) initdb it is. */
function shippedSnapshot(): Blob | undefined {
  try {
    const manifest = JSON.parse(readFileSync(PGLITE_SNAPSHOT_MANIFEST, "utf8")) as { pglite?: string };
    if (manifest.pglite !== pgliteVersion()) return undefined;
    return new Blob([readFileSync(PGLITE_SNAPSHOT)]);
  } catch {
    return undefined;
  }
}

export async function openPglite(options: PgliteOptions = {}): Promise<DatabaseHandle> {
  let client: PGlite;
  if (options.instance) client = options.instance;
  else if (options.dataDir) {
    mkdirSync(options.dataDir, { recursive: true });
    const path = join(options.dataDir, "pgdata");
    const fresh = !existsSync(path) || readdirSync(path).length === 0;
    const snapshot = fresh ? shippedSnapshot() : undefined;
    client = await PGlite.create(path, snapshot ? { loadDataDir: snapshot } : {});
  } else client = await PGlite.create();
  const db = drizzlePglite(client, { schema }) as unknown as Database;
  let closed = false;
  return {
    kind: "pglite",
    db,
    async ping() {
      await client.query("select 1");
    },
    async listen(channel, onMessage) {
      const unsubscribe = await client.listen(channel, onMessage);
      return async () => {
        if (!closed) await unsubscribe();
      };
    },
    async migrate() {
      await migratePglite(drizzlePglite(client), { migrationsFolder: MIGRATIONS_FOLDER });
    },
    async close() {
      if (closed) return;
      closed = true;
      await client.close();
    },
    ...(options.dataDir ? { freeBytes: () => freeBytesUnder(options.dataDir as string) } : {}),
  };
}

/** Bytes an unprivileged writer may still write on the filesystem holding `path`. */
function freeBytesUnder(path: string): number {
  const stats = statfsSync(path);
  return stats.bavail * stats.bsize;
}

export interface PostgresOptions {
  url: string;
  poolMax: number;
  connectTimeoutSeconds?: number;
  /**
   * The server cancels a statement running (or waiting for a lock) longer than this, so a stuck
   * statement gives its pool connection back instead of holding it after its request gave up.
   * Migrations run on a connection of their own without it.
   */
  statementTimeoutMs?: number;
}

/**
 * Drizzle asks postgres.js for a server-side prepared statement only for queries given a name, so
 * every other statement is parsed and planned again on each run. The app's statements have a fixed
 * set of shapes (values are always parameters), so they are all prepared: postgres.js keeps one per
 * distinct text on each connection, and a hot statement is then only bound and executed.
 */
function preparingEveryStatement(client: postgres.Sql): postgres.Sql {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property !== "unsafe") return Reflect.get(target, property, receiver);
      return (query: string, parameters?: postgres.ParameterOrJSON<never>[], options?: postgres.UnsafeQueryOptions) =>
        target.unsafe(query, parameters, { ...options, prepare: true });
    },
  });
}

export async function openPostgres(options: PostgresOptions): Promise<DatabaseHandle> {
  const client = postgres(options.url, {
    max: options.poolMax,
    connect_timeout: options.connectTimeoutSeconds ?? 5,
    idle_timeout: 30,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    connection: {
      application_name: "arbiter",
      ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    },
  });
  const db = drizzlePostgres(preparingEveryStatement(client), { schema }) as unknown as Database;
  return {
    kind: "postgres",
    db,
    async ping() {
      await client`select 1`;
    },
    async listen(channel, onMessage) {
      const { unlisten } = await client.listen(channel, onMessage);
      return unlisten;
    },
    async migrate() {
      // The lock is held on a connection of its own, which also runs the migrations: it works with a pool
      // of one, and a long migration is not cut by the pool's statement timeout.
      const lock = postgres(options.url, { max: 1, onnotice: () => {}, connect_timeout: options.connectTimeoutSeconds ?? 5 });
      try {
        await lock`select pg_advisory_lock(${MIGRATION_LOCK_ID})`;
        await migratePostgres(drizzlePostgres(lock), { migrationsFolder: MIGRATIONS_FOLDER });
      } finally {
        await lock`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`.catch(() => {});
        await lock.end({ timeout: 5 });
      }
    },
    async copyIn(table, columns, text) {
      const statement = `copy ${quoteIdentifier(table)} (${columns.map(quoteIdentifier).join(", ")}) from stdin`;
      // A connection of its own: postgres.js pipelines queries onto busy connections, and a query sent
      // behind the COPY before its data would land inside the COPY stream (the server then drops the
      // connection: "unexpected message type during COPY").
      const reserved = await client.reserve();
      try {
        const writable = await reserved.unsafe(statement).writable();
        // finished() below reports the error; a late second one (the connection dropped) must not be unhandled.
        writable.on("error", () => {});
        writable.end(text);
        // Settles on the server's answer: CommandComplete (committed) or its error (postgres.js is patched
        // for the error after the data was sent, which otherwise never settled: see patches/).
        await finished(writable);
      } finally {
        reserved.release();
      }
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

const quoteIdentifier = (name: string) => `"${name.replaceAll('"', '""')}"`;
