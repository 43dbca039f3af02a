/**
 * bun run drill [--write-seconds 15] [--archive-timeout 10] [--json FILE]
 * Point-in-time recovery drill on a throwaway PostgreSQL cluster; prints measured RPO and RTO.
 */
import { writeFileSync } from "node:fs";
import { parseScriptArgs, scriptConfig } from "./lib/cli";
import { drillFailures, RPO_OBJECTIVE_S, RTO_OBJECTIVE_S, runDrill } from "./lib/drill";
import { OpsError, runScript } from "./lib/process";

await runScript("drill", async () => {
  const { values } = parseScriptArgs({
    "write-seconds": { type: "string", default: "15" },
    "archive-timeout": { type: "string", default: "10" },
    json: { type: "string" },
  });
  const writeSeconds = Number(values["write-seconds"]);
  const archiveTimeoutSeconds = Number(values["archive-timeout"]);
  if (!(writeSeconds > 0 && Number.isInteger(archiveTimeoutSeconds) && archiveTimeoutSeconds > 0)) {
    throw new OpsError("--write-seconds and --archive-timeout must be positive numbers", 2);
  }
  const config = scriptConfig();
  const result = await runDrill({ writeSeconds, archiveTimeoutSeconds, writeIntervalMs: 10, binDir: config.PG_BIN_DIR, log: console.log });
  if ("skipped" in result) {
    console.log(`drill: skipped: ${result.skipped}`);
    return;
  }
  console.log(JSON.stringify(result, null, 2));
  if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  const failures = drillFailures(result);
  if (failures.length) throw new OpsError(`FAILED: ${failures.join("; ")}`);
  console.log(
    `drill: passed: RPO ${result.rpo_s} s (objective < ${RPO_OBJECTIVE_S} s), RTO ${result.rto_s} s (objective < ${RTO_OBJECTIVE_S} s)`,
  );
});
