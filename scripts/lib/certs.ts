import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import { OpsError, run } from "./process";

/** The files `bun run certs` writes, under the names the deployment files refer to. */
export const CERT_FILES = {
  caCert: "ca-cert.pem",
  caKey: "ca-key.pem",
  serverCert: "server-cert.pem",
  serverKey: "server-key.pem",
  clientCert: "client-cert.pem",
  clientKey: "client-key.pem",
} as const;

export interface CertOptions {
  outDir: string;
  /** extra DNS names or IP addresses for the server certificate, beside localhost, 127.0.0.1 and ::1 */
  names?: string[];
  /** common name of the client certificate (what an operator sees in access logs) */
  clientName?: string;
  /** replace existing files */
  force?: boolean;
}

const DNS_NAME = /^(?=.{1,253}$)(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const COMMON_NAME = /^[A-Za-z0-9 ._-]{1,64}$/;

/** subjectAltName entries; names are checked strictly because they end up in an openssl config file. */
function subjectAltNames(extra: string[] = []): string {
  const entries = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"];
  for (const name of extra) {
    if (isIP(name)) entries.push(`IP:${name}`);
    else if (DNS_NAME.test(name)) entries.push(`DNS:${name.toLowerCase()}`);
    else throw new OpsError(`not a DNS name or IP address: ${JSON.stringify(name)}`, 2);
  }
  return [...new Set(entries)].join(",");
}

const newKeyArgs = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
const randomSerial = () =>
  `0x${Buffer.from(crypto.getRandomValues(new Uint8Array(16)))
    .toString("hex")
    .replace(/^./, "1")}`;

async function issue(dir: string, name: "server" | "client", subject: string, extensions: string): Promise<void> {
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  await run("openssl", ["req", "-new", ...newKeyArgs, "-keyout", join(dir, `${name}-key.pem`), "-out", csr, "-subj", subject]);
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    join(dir, CERT_FILES.caCert),
    "-CAkey",
    join(dir, CERT_FILES.caKey),
    "-set_serial",
    randomSerial(),
    "-days",
    "365",
    "-sha256",
    "-extfile",
    ext,
    "-out",
    join(dir, `${name}-cert.pem`),
  ]);
}

/**
 * Writes a CA (10 years), a server certificate (1 year, SANs for the local names plus `names`) and a
 * client certificate for mutual TLS (1 year), all P-256 keys made by the openssl CLI. Everything is
 * generated in a temporary directory first, so a failure leaves no half-written set behind.
 */
export async function generateCertificates(options: CertOptions): Promise<string[]> {
  const sans = subjectAltNames(options.names);
  const clientName = options.clientName ?? "arbiter-client";
  if (!COMMON_NAME.test(clientName)) throw new OpsError(`client name must be 1-64 letters, digits, spaces, '.', '_' or '-'`, 2);
  mkdirSync(options.outDir, { recursive: true });
  const targets = Object.values(CERT_FILES).map((file) => join(options.outDir, file));
  const existing = targets.filter((path) => existsSync(path));
  if (existing.length > 0 && !options.force) {
    throw new OpsError(`refusing to overwrite ${existing.join(", ")} (pass --force to replace them)`);
  }

  const work = mkdtempSync(join(options.outDir, ".certs-"));
  try {
    await run("openssl", [
      "req",
      "-x509",
      "-new",
      ...newKeyArgs,
      "-keyout",
      join(work, CERT_FILES.caKey),
      "-out",
      join(work, CERT_FILES.caCert),
      "-days",
      "3650",
      "-sha256",
      "-subj",
      "/O=Arbiter/CN=Arbiter local CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE,pathlen:0",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    const leaf = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n";
    await issue(work, "server", "/O=Arbiter/CN=localhost", `${leaf}extendedKeyUsage=serverAuth\nsubjectAltName=${sans}\n`);
    await issue(work, "client", `/O=Arbiter/CN=${clientName}`, `${leaf}extendedKeyUsage=clientAuth\n`);
    // The chain must hold for both leaves, or nothing is written.
    await run("openssl", [
      "verify",
      "-CAfile",
      join(work, CERT_FILES.caCert),
      join(work, CERT_FILES.serverCert),
      join(work, CERT_FILES.clientCert),
    ]);
    for (const file of Object.values(CERT_FILES)) {
      chmodSync(join(work, file), file.endsWith("-key.pem") ? 0o600 : 0o644);
      renameSync(join(work, file), join(options.outDir, file));
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const ignore = join(options.outDir, ".gitignore");
  if (!existsSync(ignore)) writeFileSync(ignore, "# Generated keys and certificates are never committed.\n*\n!.gitignore\n!README.md\n");
  return targets;
}
