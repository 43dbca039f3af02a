/**
 * bun run certs [--out certs] [--force] [--client-name NAME] [extra-dns-or-ip ...]
 * Creates a CA, a server certificate and a client certificate for mutual TLS.
 */
import { parseArgs } from "node:util";
import { generateCertificates } from "./lib/certs";
import { OpsError, run, runScript } from "./lib/process";

await runScript("certs", async () => {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse();
  } catch (error) {
    throw new OpsError((error as Error).message, 2);
  }
  const { values, positionals } = parsed;
  const written = await generateCertificates({
    outDir: values.out,
    names: positionals,
    clientName: values["client-name"],
    force: values.force,
  });
  const { stdout } = await run("openssl", ["x509", "-in", written[2]!, "-noout", "-ext", "subjectAltName", "-enddate"]);
  console.log(`certs: wrote ${written.join(", ")}; chain verified`);
  console.log(stdout.trim());
});

function parse() {
  return parseArgs({
    args: Bun.argv.slice(2),
    allowPositionals: true,
    options: {
      out: { type: "string", default: "certs" },
      force: { type: "boolean", default: false },
      "client-name": { type: "string" },
    },
  });
}
