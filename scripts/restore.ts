/**
 * bun run restore <manifest.json | backup file | latest> [--force]
 * Restores a backup into the configured database after checking its SHA-256.
 */
import { restoreBackup } from "./lib/backup";
import { parseScriptArgs, scriptConfig } from "./lib/cli";
import { OpsError, runScript } from "./lib/process";
import { totalRows } from "./lib/table-stats";

await runScript("restore", async () => {
  const { values, positionals } = parseScriptArgs({ force: { type: "boolean", default: false } });
  const reference = positionals[0];
  if (!reference || positionals.length > 1) throw new OpsError("usage: bun run restore <manifest.json | latest> [--force]", 2);
  const result = await restoreBackup(scriptConfig(), reference, { force: values.force });
  const rows = totalRows(result.manifest.tables);
  console.log(
    `restore: restored ${result.manifest.file} (${rows} rows, taken ${result.manifest.created_at}) in ${result.duration_ms} ms; counts and checksums match`,
  );
  if (result.replacedDataDir) console.log(`restore: the previous embedded database was moved to ${result.replacedDataDir}`);
});
