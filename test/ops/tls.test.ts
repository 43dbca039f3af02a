import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CERT_FILES, generateCertificates } from "../../scripts/lib/certs";
import { ConfigError, loadConfig } from "../../src/config";
import { serverTlsOptions, TlsSetupError } from "../../src/tls";
import { startTestApp, type TestApp } from "../helpers/app";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

// Spawns processes or opens databases on disk; the 5 s default is too tight on a busy machine.
const SLOW = 60_000;

/** Real handshakes against Bun.serve with the options main.ts builds; a counter proves no handler ran. */
const dir = mkdtempSync(join(tmpdir(), "arbiter-tls-"));
const ours = join(dir, "ours");
const foreign = join(dir, "foreign");
const read = (set: string, file: keyof typeof CERT_FILES) => readFileSync(join(set, CERT_FILES[file]), "utf8");
const tlsEnv = (set: string, mutual: boolean) => ({
  TLS_CERT_FILE: join(set, CERT_FILES.serverCert),
  TLS_KEY_FILE: join(set, CERT_FILES.serverKey),
  ...(mutual ? { TLS_CA_FILE: join(set, CERT_FILES.caCert), TLS_CLIENT_AUTH: "require" } : {}),
});

let t: TestApp;
let handled = 0;
function serve(mutual: boolean) {
  const tls = serverTlsOptions(loadConfig(tlsEnv(ours, mutual)));
  return Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    tls,
    fetch: (request, server) => {
      handled++;
      return t.app.fetch(request, server);
    },
  });
}
const url = (server: Bun.Server<undefined>, path: string) => `https://localhost:${server.port}${path}`;

/** A client the server must turn away during the handshake, before any handler runs. */
async function expectRefused(mutual: boolean, tls: { ca: string; cert?: string; key?: string }) {
  const server = serve(mutual);
  try {
    const before = handled;
    await expect(fetch(url(server, "/health/live"), { tls })).rejects.toThrow();
    expect(handled).toBe(before);
  } finally {
    await server.stop(true);
  }
}

beforeAll(async () => {
  await generateCertificates({ outDir: ours });
  await generateCertificates({ outDir: foreign, clientName: "intruder" });
  t = await startTestApp();
}, SLOW);
afterAll(async () => {
  await t.close();
  rmSync(dir, { recursive: true, force: true });
}, SLOW);

describe("HTTPS", () => {
  test(
    "serves over TLS with the generated server certificate and sends HSTS",
    async () => {
      const server = serve(false);
      try {
        const response = await fetch(url(server, "/health/live"), { tls: { ca: read(ours, "caCert") } });
        expect(response.status).toBe(200);
        expect(response.headers.get("strict-transport-security")).toContain("max-age=");
        // The certificate names 127.0.0.1 as well as localhost.
        const byAddress = await fetch(`https://127.0.0.1:${server.port}/health/live`, { tls: { ca: read(ours, "caCert") } });
        expect(byAddress.status).toBe(200);
      } finally {
        await server.stop(true);
      }
    },
    SLOW,
  );

  test("a client that does not trust the CA refuses the server", () => expectRefused(false, { ca: read(foreign, "caCert") }), SLOW);
});

describe("mutual TLS", () => {
  test(
    "a client certificate from the configured CA is accepted and requests reach the app",
    async () => {
      const server = serve(true);
      try {
        const before = handled;
        const response = await fetch(url(server, "/health/ready"), {
          tls: { ca: read(ours, "caCert"), cert: read(ours, "clientCert"), key: read(ours, "clientKey") },
        });
        expect(response.status).toBe(200);
        expect(((await response.json()) as { status: string }).status).toBe("pass");
        expect(handled).toBe(before + 1);
      } finally {
        await server.stop(true);
      }
    },
    SLOW,
  );

  test(
    "without a client certificate the handshake fails and no handler runs",
    () => expectRefused(true, { ca: read(ours, "caCert") }),
    SLOW,
  );

  test(
    "a client certificate from another CA is refused and no handler runs",
    () => expectRefused(true, { ca: read(ours, "caCert"), cert: read(foreign, "clientCert"), key: read(foreign, "clientKey") }),
    SLOW,
  );
});

describe("TLS configuration errors", () => {
  test(
    "a certificate without its key, or mTLS without a CA, is a configuration error naming the variable",
    () => {
      expect(() => loadConfig({ TLS_CERT_FILE: "server-cert.pem" })).toThrow(/TLS_KEY_FILE/);
      expect(() => loadConfig({ ...tlsEnv(ours, false), TLS_CLIENT_AUTH: "require" })).toThrow(ConfigError);
      expect(() => loadConfig({ TLS_CLIENT_AUTH: "sometimes" })).toThrow(/TLS_CLIENT_AUTH/);
    },
    SLOW,
  );

  test(
    "unreadable or wrong files stop the start with a clear message",
    () => {
      const missing = loadConfig({ ...tlsEnv(ours, false), TLS_KEY_FILE: join(dir, "nope.pem") });
      expect(() => serverTlsOptions(missing)).toThrow(TlsSetupError);
      expect(() => serverTlsOptions(missing)).toThrow(/TLS_KEY_FILE: cannot read/);
      const swapped = loadConfig({ ...tlsEnv(ours, false), TLS_KEY_FILE: join(ours, CERT_FILES.serverCert) });
      expect(() => serverTlsOptions(swapped)).toThrow(/TLS_KEY_FILE: .* is not a PEM file/);
    },
    SLOW,
  );
});

describe("the real entry point", () => {
  const entry = join(import.meta.dir, "../../src/main.ts");
  const spawnMain = (env: Record<string, string>) =>
    Bun.spawn(["bun", "run", entry], {
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        PORT: "0",
        LOG_LEVEL: "info",
        DATA_DIR: join(dir, "data"),
        ...env,
      },
      stdout: "pipe",
      stderr: "pipe",
    });

  test(
    "main.ts serves mutual TLS from TLS_* variables",
    async () => {
      const child = spawnMain(tlsEnv(ours, true));
      try {
        const reader = child.stdout.getReader();
        let output = "";
        let listening: { url: string; tls: string } | undefined;
        while (!listening) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`main.ts exited: ${output} ${await new Response(child.stderr).text()}`);
          output += new TextDecoder().decode(value);
          const line = output.split("\n").find((l) => l.includes('"listening"'));
          if (line) listening = JSON.parse(line);
        }
        expect(listening.tls).toBe("mutual");
        const port = new URL(listening.url).port;
        const ok = await fetch(`https://localhost:${port}/health/live`, {
          tls: { ca: read(ours, "caCert"), cert: read(ours, "clientCert"), key: read(ours, "clientKey") },
        });
        expect(ok.status).toBe(200);
        await expect(fetch(`https://localhost:${port}/health/live`, { tls: { ca: read(ours, "caCert") } })).rejects.toThrow();
      } finally {
        child.kill("SIGTERM");
        await child.exited;
      }
    },
    SLOW,
  );

  test(
    "main.ts exits 2 with one line when a TLS file is missing",
    async () => {
      const child = spawnMain({ ...tlsEnv(ours, false), TLS_CERT_FILE: join(dir, "missing.pem") });
      expect(await child.exited).toBe(2);
      expect(await new Response(child.stderr).text()).toMatch(/^arbiter: TLS_CERT_FILE: cannot read .*missing\.pem/);
    },
    SLOW,
  );
});
