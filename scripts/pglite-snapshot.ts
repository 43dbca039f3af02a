/**
 * Writes the embedded database's starting point: a PGlite data directory with every migration
 * applied, as a gzipped tarball plus a manifest (drizzle/snapshot/). A fresh embedded start loads it
 * instead of running initdb and the migrations in WebAssembly. Run after adding a migration or
 * upgrading PGlite; a test fails while the committed snapshot is behind either.
 *
 *   bun run db:snapshot
 */
import { writeFileSync } from "node:fs";
import { PGlite } from "@electric-sql/pglite";
import { openPglite, PGLITE_SNAPSHOT, PGLITE_SNAPSHOT_MANIFEST, pgliteVersion, snapshotManifest } from "../src/db/client";

const client = await PGlite.create();
const handle = await openPglite({ instance: client });
await handle.migrate();
const dump = await client.dumpDataDir("gzip");
writeFileSync(PGLITE_SNAPSHOT, new Uint8Array(await dump.arrayBuffer()));
writeFileSync(PGLITE_SNAPSHOT_MANIFEST, `${JSON.stringify(snapshotManifest(pgliteVersion()), null, 2)}\n`);
await handle.close();
console.log(`wrote ${PGLITE_SNAPSHOT} (${dump.size} bytes) for PGlite ${pgliteVersion()}`);
