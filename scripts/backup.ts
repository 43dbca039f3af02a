/**
 * bun run backup [--verify] [--keep N] [--dir DIR]
 * Backs up the configured database (DATABASE_URL, else the embedded one in DATA_DIR) into BACKUP_DIR.
 */
import { createBackup } from "./lib/backup";
import { parseScriptArgs, scriptConfig } from "./lib/cli";
import { OpsError, runScript } from "./lib/process";
import { totalRows } from "./lib/table-stats";

await runScript("backup", async () => {
  const { values } = parseScriptArgs({
    verify: { type: "boolean", default: false },
    keep: { type: "string" },
    dir: { type: "string" },
  });
  const keep = values.keep === undefined ? undefined : Number(values.keep);
  if (keep !== undefined && !(Number.isInteger(keep) && keep > 0)) throw new OpsError("--keep must be a positive integer", 2);
  const result = await createBackup(scriptConfig(), { verify: values.verify, keep, dir: values.dir });
  const { manifest } = result;
  const rows = totalRows(manifest.tables);
  console.log(
    `backup: wrote ${result.dataPath} (${manifest.size_bytes} bytes, ${rows} rows, sha256 ${manifest.sha256}) in ${manifest.duration_ms} ms`,
  );
  console.log(`backup: manifest ${result.manifestPath}`);
  if (manifest.verified)
    console.log(`backup: verified by a scratch restore in ${manifest.verified.duration_ms} ms: every table count and checksum matches`);
  for (const path of result.pruned) console.log(`backup: pruned ${path}`);
});
