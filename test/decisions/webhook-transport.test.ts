import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import { eq } from "drizzle-orm";
import { CERT_FILES, generateCertificates } from "../../scripts/lib/certs";
import { webhookDeliveries } from "../../src/db/schema";
import { deliverDueWebhooks, deliveryAttempts, WEBHOOK_RESPONSE_MAX_BYTES, type WebhookTransport } from "../../src/decisions/webhooks";
import { startTestApp, type TestApp } from "../helpers/app";
import { act, createDecision, manualClock } from "./helpers";

// Per file: Bun applies a preload's default timeout to the first file of a run only.
setDefaultTimeout(30_000);

const SECRET = "whsec-test-0123456789abcdef0123456789abcdef";
const TIMEOUT_MS = 3_000;
const clock = manualClock();
let t: TestApp;
const certDir = mkdtempSync(join(tmpdir(), "arbiter-webhook-certs-"));
const cert = (name: keyof typeof CERT_FILES) => readFileSync(join(certDir, CERT_FILES[name]), "utf8");

/** What a receiver saw of one request. */
interface Seen {
  head: string;
  host: string | undefined;
  /** the TLS server name the client sent (SNI), for TLS receivers */
  servername?: string | false | null;
}

/**
 * A raw receiver on one address: it reads a request head and answers with `respond`, so a test
 * controls every byte of the answer (redirects, endless bodies, silence).
 */
interface Receiver {
  port: number;
  seen: Seen[];
  /** bytes `respond` wrote before the connection closed */
  written: number;
  respond: (socket: Socket) => void;
  close(): Promise<void>;
}

const ok = (socket: Socket) => socket.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");

function onRequest(receiver: Receiver, socket: Socket) {
  let buffered = "";
  socket.on("error", () => {});
  socket.on("data", (chunk: Buffer) => {
    if (buffered.includes("\r\n\r\n")) return;
    buffered += chunk.toString("latin1");
    if (!buffered.includes("\r\n\r\n")) return;
    const head = buffered.slice(0, buffered.indexOf("\r\n\r\n"));
    const host = /^host: *(.*)$/im.exec(head)?.[1]?.trim();
    const servername = "servername" in socket ? (socket as TLSSocket).servername : undefined;
    receiver.seen.push({ head, host, ...(servername === undefined ? {} : { servername }) });
    receiver.respond(socket);
  });
}

async function listen(server: Server, host: string, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as { port: number }).port;
}

async function receiver(host: string, options: { port?: number; tls?: boolean } = {}): Promise<Receiver> {
  const self: Receiver = { port: 0, seen: [], written: 0, respond: ok, close: async () => {} };
  const server = options.tls
    ? createTlsServer({ cert: cert("serverCert"), key: cert("serverKey") }, (socket) => onRequest(self, socket))
    : createServer((socket) => onRequest(self, socket));
  self.port = await listen(server, host, options.port);
  self.close = () => new Promise((resolve) => server.close(() => resolve()));
  return self;
}

/** A resolver that answers `answers[n]` to its n-th lookup (the last one from then on), counting lookups. */
function resolver(...answers: string[][]) {
  const lookups: string[] = [];
  const transport: WebhookTransport = {
    resolve: async (host) => {
      lookups.push(host);
      return answers[Math.min(lookups.length - 1, answers.length - 1)]!;
    },
  };
  return { lookups, transport };
}

/** A settled decision whose delivery targets `url` (a name only the test's resolver knows). */
async function settledWithCallback(url: string): Promise<string> {
  const d = await createDecision(t, { callback_url: "http://127.0.0.1:9/placeholder" });
  await act(t, d.id, "approve", "operator");
  await t.deps.database.db.update(webhookDeliveries).set({ url }).where(eq(webhookDeliveries.decisionId, d.id));
  return d.id;
}

const receivers: Receiver[] = [];
async function open(host: string, options: { port?: number; tls?: boolean } = {}) {
  const r = await receiver(host, options);
  receivers.push(r);
  return r;
}

/** A receiver on 127.0.0.1 and another on 127.0.0.2, on one port, so only the address tells them apart. */
async function twoAddressesOnePort(): Promise<[Receiver, Receiver]> {
  for (let tries = 0; ; tries++) {
    const checked = await open("127.0.0.1");
    try {
      return [checked, await open("127.0.0.2", { port: checked.port })];
    } catch (error) {
      if (tries >= 5) throw error;
    }
  }
}

beforeAll(async () => {
  await generateCertificates({ outDir: certDir, names: ["hooks.rebind.test"] });
  t = await startTestApp({
    clock,
    env: {
      WEBHOOK_SIGNING_SECRET: SECRET,
      WEBHOOK_ALLOW_HTTP_LOOPBACK: "true",
      WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
      WEBHOOK_MAX_ATTEMPTS: "3",
    },
  });
}, 60_000);
afterAll(async () => {
  await t.close();
  await Promise.all(receivers.map((r) => r.close()));
  rmSync(certDir, { recursive: true, force: true });
});
beforeEach(async () => {
  // Nothing left due from an earlier test is delivered to this test's receivers.
  await t.deps.database.db.update(webhookDeliveries).set({ nextAttemptAt: null });
});

describe("the checked address is the connected address (DNS rebinding)", () => {
  test("the name is resolved once per attempt and the connection goes to the checked answer, never a later one", async () => {
    const [checked, rebound] = await twoAddressesOnePort();
    const { lookups, transport } = resolver(["127.0.0.1"], ["127.0.0.2"]);
    const id = await settledWithCallback(`http://hooks.rebind.test:${checked.port}/hook`);
    expect(await deliverDueWebhooks(t.deps, 20, transport)).toBe(1);
    expect(lookups).toEqual(["hooks.rebind.test"]);
    expect(rebound.seen).toHaveLength(0);
    expect(checked.seen).toHaveLength(1);
    // The name, not the address, is what the receiver sees; the signature is intact.
    expect(checked.seen[0]!.host).toBe(`hooks.rebind.test:${checked.port}`);
    expect(checked.seen[0]!.head).toMatch(/^POST \/hook HTTP\/1\.1/);
    expect(checked.seen[0]!.head).toMatch(/^arbiter-signature: t=\d+,v1=[0-9a-f]{64}$/im);
    expect((await deliveryAttempts(t.deps, id)).map((a) => [a.statusCode, a.delivered])).toEqual([[200, true]]);
  });

  test("a name first answering a refused address is refused, whatever it answers next", async () => {
    const target = await open("127.0.0.1");
    const { lookups, transport } = resolver(["10.0.0.5"], ["127.0.0.1"]);
    const id = await settledWithCallback(`http://hooks.rebind.test:${target.port}/hook`);
    expect(await deliverDueWebhooks(t.deps, 20, transport)).toBe(1);
    expect(lookups).toHaveLength(1);
    expect(target.seen).toHaveLength(0);
    const attempts = await deliveryAttempts(t.deps, id);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ delivered: false, statusCode: null, nextAttemptAt: null });
    expect(attempts[0]!.error).toBe("refused: plain http is allowed only to loopback addresses");
  });

  test("every resolved address is checked: one refused address refuses the name", async () => {
    const target = await open("127.0.0.1");
    const { transport } = resolver(["127.0.0.1", "169.254.169.254"]);
    const id = await settledWithCallback(`https://hooks.rebind.test:${target.port}/hook`);
    expect(await deliverDueWebhooks(t.deps, 20, transport)).toBe(1);
    expect(target.seen).toHaveLength(0);
    expect((await deliveryAttempts(t.deps, id))[0]!.error).toBe("refused: address 169.254.169.254 is private or link-local");
  });

  test("https: SNI and the certificate check use the URL's name while the connection goes to the checked address", async () => {
    const target = await open("127.0.0.1", { tls: true });
    const { transport } = resolver(["127.0.0.1"]);
    const trusted = { ...transport, ca: cert("caCert") };
    const id = await settledWithCallback(`https://hooks.rebind.test:${target.port}/hook`);
    expect(await deliverDueWebhooks(t.deps, 20, trusted)).toBe(1);
    expect(target.seen).toHaveLength(1);
    expect(target.seen[0]!.host).toBe(`hooks.rebind.test:${target.port}`);
    expect(target.seen[0]!.servername).toBe("hooks.rebind.test");
    expect((await deliveryAttempts(t.deps, id)).map((a) => [a.statusCode, a.delivered])).toEqual([[200, true]]);

    // A name the certificate does not carry, at the same address, is refused by the TLS check.
    const wrongName = await settledWithCallback(`https://other.rebind.test:${target.port}/hook`);
    expect(await deliverDueWebhooks(t.deps, 20, trusted)).toBe(1);
    const [failed] = await deliveryAttempts(t.deps, wrongName);
    expect(failed).toMatchObject({ delivered: false, statusCode: null });
    expect(failed!.error).toMatch(/altname|certificate|hostname/i);

    // A certificate from an authority the platform does not trust is refused too.
    const untrusted = await settledWithCallback(`https://hooks.rebind.test:${target.port}/hook`);
    expect(await deliverDueWebhooks(t.deps, 20, transport)).toBe(1);
    const [refused] = await deliveryAttempts(t.deps, untrusted);
    expect(refused).toMatchObject({ delivered: false, statusCode: null });
    expect(refused!.error).toMatch(/certificate|verify|self.signed/i);
    // Only the first, trusted exchange reached the receiver's request handling.
    expect(target.seen).toHaveLength(1);
  });
});

describe("answers are untrusted", () => {
  test("a redirect is not followed: it is recorded as a failed attempt and retried at the same URL", async () => {
    const internal = await open("127.0.0.1");
    const target = await open("127.0.0.1");
    target.respond = (socket) =>
      socket.end(
        `HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:${internal.port}/internal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
      );
    const { transport } = resolver(["127.0.0.1"]);
    const url = `http://hooks.rebind.test:${target.port}/hook`;
    const id = await settledWithCallback(url);
    expect(await deliverDueWebhooks(t.deps, 20, transport)).toBe(1);
    expect(target.seen).toHaveLength(1);
    expect(internal.seen).toHaveLength(0);
    const [first, retry] = await deliveryAttempts(t.deps, id);
    expect(first).toMatchObject({ statusCode: 302, delivered: false, error: "HTTP 302 (redirects are not followed)" });
    expect(retry).toMatchObject({ attempt: 2, url });
  });

  test("an endless response body is read only up to the bound, then the connection is closed", async () => {
    const target = await open("127.0.0.1");
    const chunk = Buffer.alloc(64 * 1024, "x");
    target.respond = (socket) => {
      let open = true;
      socket.on("close", () => {
        open = false;
      });
      socket.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
      const pump = () => {
        while (open && socket.write(chunk)) target.written += chunk.length;
        if (open) socket.once("drain", pump);
      };
      pump();
    };
    const { transport } = resolver(["127.0.0.1"]);
    const id = await settledWithCallback(`http://hooks.rebind.test:${target.port}/hook`);
    const started = performance.now();
    expect(await deliverDueWebhooks(t.deps, 20, transport)).toBe(1);
    const elapsed = performance.now() - started;
    // Cut off by the byte bound, well before the attempt's deadline would have ended it.
    expect(elapsed).toBeLessThan(TIMEOUT_MS / 2);
    expect((await deliveryAttempts(t.deps, id)).map((a) => [a.statusCode, a.delivered])).toEqual([[200, true]]);
    // What the receiver managed to write is the bound plus socket buffers, not what it could send.
    await Bun.sleep(100);
    expect(target.written).toBeGreaterThan(WEBHOOK_RESPONSE_MAX_BYTES);
    expect(target.written).toBeLessThan(32 * 1024 * 1024);
  });

  test("a receiver that never answers ends the attempt at WEBHOOK_TIMEOUT_MS", async () => {
    const target = await open("127.0.0.1");
    target.respond = () => {};
    const { transport } = resolver(["127.0.0.1"]);
    const id = await settledWithCallback(`http://hooks.rebind.test:${target.port}/hook`);
    const started = performance.now();
    await deliverDueWebhooks(t.deps, 20, transport);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(TIMEOUT_MS + 2_000);
    const [attempt, retry] = await deliveryAttempts(t.deps, id);
    expect(attempt).toMatchObject({ statusCode: null, delivered: false, error: `no response within ${TIMEOUT_MS} ms` });
    expect(retry).toMatchObject({ attempt: 2 });
  });
});
