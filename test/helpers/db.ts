import { PGlite } from "@electric-sql/pglite";
import postgres from "postgres";
import { type DatabaseHandle, openPglite, openPostgres } from "../../src/db/client";

/**
 * A fresh, migrated database for one test file, on whichever tier the run targets:
 * - DATABASE_URL set → a new database on that server (created here, dropped on close), so runs and
 *   files never see each other's rows;
 * - otherwise → a clone of one migrated in-memory PGlite per process (PGlite takes seconds to boot;
 *   a clone takes a fraction of that).
 */
let template: Promise<PGlite> | undefined;

async function migratedTemplate(): Promise<PGlite> {
  const instance = await PGlite.create();
  const handle = await openPglite({ instance });
  await handle.migrate();
  return instance;
}

export const usingRealPostgres = () => Boolean(process.env.DATABASE_URL);

export async function openTestDatabase(): Promise<DatabaseHandle> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    template ??= migratedTemplate();
    const instance = (await (await template).clone()) as PGlite;
    return openPglite({ instance });
  }
  const { url: dbUrl, drop } = await createScratchDatabase(url);
  const handle = await openPostgres({ url: dbUrl, poolMax: 10 });
  await handle.migrate();
  return {
    ...handle,
    async close() {
      await handle.close();
      await drop();
    },
  };
}

/**
 * Two handles on one fresh, migrated database, as two replicas have: two pools on the real server,
 * or two Drizzle databases over one embedded instance. Each keeps its own per-database state
 * (notifier, caches, rules in force). Closing the handles is left to `close()`.
 */
export async function openSharedTestDatabase(): Promise<{ first: DatabaseHandle; second: DatabaseHandle; close(): Promise<void> }> {
  const keepOpen = (handle: DatabaseHandle): DatabaseHandle => ({ ...handle, close: async () => {} });
  const url = process.env.DATABASE_URL;
  if (!url) {
    template ??= migratedTemplate();
    const instance = (await (await template).clone()) as PGlite;
    const first = await openPglite({ instance });
    const second = await openPglite({ instance });
    return { first: keepOpen(first), second: keepOpen(second), close: () => first.close() };
  }
  const scratch = await createScratchDatabase(url);
  const first = await openPostgres({ url: scratch.url, poolMax: 10 });
  await first.migrate();
  const second = await openPostgres({ url: scratch.url, poolMax: 10 });
  return {
    first: keepOpen(first),
    second: keepOpen(second),
    async close() {
      await Promise.allSettled([first.close(), second.close()]);
      await scratch.drop();
    },
  };
}

/** Creates an empty database beside the one `url` names; `drop` removes it (even with sessions open). */
export async function createScratchDatabase(url: string): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `arbiter_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  const scratch = new URL(url);
  scratch.pathname = `/${name}`;
  return {
    url: scratch.toString(),
    name,
    async drop() {
      const again = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await again.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await again.end();
      }
    },
  };
}
