/**
 * Container health check: GET /health/live on this process's own listener, over HTTPS when TLS is
 * configured (trusting TLS_CA_FILE). Under mutual TLS pass a client certificate:
 *   bun run ops/healthcheck.ts --client-cert /certs/client-cert.pem --client-key /certs/client-key.pem
 */
import { readFileSync } from "node:fs";
import { parseScriptArgs, scriptConfig } from "../scripts/lib/cli";
import { OpsError, runScript } from "../scripts/lib/process";

await runScript("healthcheck", async () => {
  const { values } = parseScriptArgs({ "client-cert": { type: "string" }, "client-key": { type: "string" } });
  const config = scriptConfig();
  const secure = Boolean(config.TLS_CERT_FILE);
  const read = (path: string | undefined) => (path ? readFileSync(path, "utf8") : undefined);
  const response = await fetch(`${secure ? "https" : "http"}://localhost:${config.PORT}/health/live`, {
    signal: AbortSignal.timeout(4000),
    tls: secure ? { ca: read(config.TLS_CA_FILE), cert: read(values["client-cert"]), key: read(values["client-key"]) } : undefined,
  }).catch((error: Error) => {
    throw new OpsError(`unreachable: ${error.message}`);
  });
  if (response.status !== 200) throw new OpsError(`/health/live answered ${response.status}`);
});
