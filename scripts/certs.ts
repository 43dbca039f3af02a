/**
 * bun run certs [--out certs] [--force] [--client-name NAME] [extra-dns-or-ip ...]
 * Creates a CA, a server certificate and a client certificate for mutual TLS.
 */
import { generateCertificates } from "./lib/certs";
import { parseScriptArgs } from "./lib/cli";
import { run, runScript } from "./lib/process";

await runScript("certs", async () => {
  const { values, positionals } = parseScriptArgs({
    out: { type: "string", default: "certs" },
    force: { type: "boolean", default: false },
    "client-name": { type: "string" },
  });
  const written = await generateCertificates({
    outDir: values.out,
    names: positionals,
    clientName: values["client-name"],
    force: values.force,
  });
  const { stdout } = await run("openssl", ["x509", "-in", written[2] ?? "", "-noout", "-ext", "subjectAltName", "-enddate"]);
  console.log(`certs: wrote ${written.join(", ")}; chain verified`);
  console.log(stdout.trim());
});
