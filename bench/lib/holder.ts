/**
 * The client half of the long-poll (B4) and SSE (B5) scenarios: a process of its own holding
 * thousands of open requests, so the server's memory holds only server-side state and the
 * orchestrator's event loop stays free. Spawned with BUN_CONFIG_MAX_HTTP_REQUESTS raised.
 *
 * Reads one JSON line (a HoldConfig) from stdin, opens every request, prints `ready` once they are
 * open, waits for a `go` line, then triggers the change itself and times the answers from the
 * moment it did (one clock: no cross-process timestamps). Prints one JSON line (a HoldReport).
 */

export type HoldConfig =
  | {
      mode: "waiters";
      base: string;
      /** waiter i long-polls ids[i % ids.length] */
      ids: string[];
      waiters: number;
      waitSeconds: number;
      /** the requester's key (waits) and a resolver's key (approves) */
      key: string;
      approveKey: string;
    }
  | { mode: "streams"; base: string; streams: number; key: string; creatorKey: string };

export interface HoldReport {
  /** ms from the trigger to each answer or delivery */
  latencies_ms: number[];
  /** answers by `<http status>:<decision status>`, or deliveries by `<event type>` */
  outcomes: Record<string, number>;
  /** ms from the trigger until every approval (or the one create) had answered */
  trigger_ms: number;
  /** statuses of the trigger requests */
  trigger_statuses: Record<string, number>;
}

import { parseResponse } from "./http-response";

const count = (tally: Record<string, number>, key: string) => {
  tally[key] = (tally[key] ?? 0) + 1;
};
const lines = console[Symbol.asyncIterator]();
const nextLine = async () => {
  const line = await lines.next();
  if (line.done) process.exit(0); // the orchestrator went away
  return line.value;
};

interface RawAnswer {
  status: number;
  body: string;
  /** when its last byte arrived */
  at: number;
}

/**
 * A connection opened now for one request written later: resolves, once connected, with the
 * function that writes `request` and resolves with the answer, read by hand. With fetch, every
 * answer also cost this process a Response, a Headers object and a body stream before its time was
 * taken, and 5,000 answers queue that work behind each other on the client's event loop: it was
 * timed as the server's.
 */
function connectFor(base: string, request: string): Promise<() => Promise<RawAnswer>> {
  const { hostname, port } = new URL(base);
  return new Promise((connected, notConnected) => {
    let received = Buffer.alloc(0);
    let settled = false;
    let answer: { resolve: (answer: RawAnswer) => void; reject: (error: Error) => void } | undefined;
    const awaitingAnswer = new Promise<RawAnswer>((resolve, reject) => (answer = { resolve, reject }));
    // Settled once, whether the connection answered, closed early or failed.
    const finish = (socket: { end(): void }, whole?: { status: number; body: string }, error?: Error) => {
      if (settled) return;
      settled = true;
      if (whole) answer!.resolve({ ...whole, at: performance.now() });
      else answer!.reject(error ?? new Error(`connection closed after ${received.length} bytes, before a whole answer`));
      socket.end();
    };
    awaitingAnswer.catch(() => {}); // rejected before anyone asked for it: reported when they do
    Bun.connect({
      hostname,
      port: Number(port),
      socket: {
        open: (socket) =>
          connected(() => {
            socket.write(request);
            return awaitingAnswer;
          }),
        data(socket, chunk) {
          received = received.length ? Buffer.concat([received, chunk]) : Buffer.from(chunk);
          const whole = parseResponse(received);
          if (whole) finish(socket, whole);
        },
        close: (socket) => finish(socket, parseResponse(received, true)),
        error: (socket, error) => {
          notConnected(error); // when it failed before connecting; a no-op after
          finish(socket, undefined, error);
        },
      },
    }).catch(notConnected);
  });
}

const requestText = (method: string, base: string, path: string, headers: Record<string, string>, body = "") =>
  [
    `${method} ${path} HTTP/1.1`,
    `Host: ${new URL(base).host}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ...(body ? [`Content-Length: ${Buffer.byteLength(body)}`] : []),
    "",
    body,
  ].join("\r\n");

/** One GET on a connection of its own (see connectFor), written as soon as it is connected. */
const rawGet = (base: string, path: string, headers: Record<string, string>): Promise<RawAnswer> =>
  connectFor(base, requestText("GET", base, path, headers)).then((send) => send());

/** The same GET through fetch, for comparing the two clients (BENCH_HOLD_CLIENT=fetch). */
async function fetchGet(base: string, path: string, headers: Record<string, string>): Promise<RawAnswer> {
  const res = await fetch(base + path, { headers });
  const body = await res.text();
  return { status: res.status, body, at: performance.now() };
}

async function waiters(config: Extract<HoldConfig, { mode: "waiters" }>): Promise<HoldReport> {
  const outcomes: Record<string, number> = {};
  const get = process.env.BENCH_HOLD_CLIENT === "fetch" ? fetchGet : rawGet;
  // Bodies are parsed only once every answer is in: parsing as they arrive would delay the next one's time.
  const answers = Array.from({ length: config.waiters }, (_, i) =>
    get(config.base, `/v1/decisions/${config.ids[i % config.ids.length]}?wait=${config.waitSeconds}`, { "X-API-Key": config.key }).catch(
      (error: unknown) => error as Error,
    ),
  );
  // The approvals' connections are opened before the trigger: thousands of connects at once overflow
  // the server's listen backlog (512 on Bun), the kernel drops SYNs and the client retries them 1, 3,
  // 7, 15 s later, which was timed as the server's answer.
  const approve = (id: string) =>
    requestText(
      "POST",
      config.base,
      `/v1/decisions/${id}/approve`,
      { "X-API-Key": config.approveKey, "Content-Type": "application/json" },
      JSON.stringify({ reason: "benchmark" }),
    );
  const approvals = await Promise.all([...new Set(config.ids)].map((id) => connectFor(config.base, approve(id))));
  console.log("ready");
  await nextLine();
  const triggerStatuses: Record<string, number> = {};
  const started = performance.now();
  await Promise.all(
    approvals.map(async (send) => {
      try {
        count(triggerStatuses, String((await send()).status));
      } catch (error) {
        count(triggerStatuses, `failed:${(error as Error).message}`);
      }
    }),
  );
  const triggerMs = performance.now() - started;
  const answeredAt: number[] = [];
  for (const answer of await Promise.all(answers)) {
    if (answer instanceof Error) {
      count(outcomes, `failed:${answer.message}`);
      continue;
    }
    answeredAt.push(answer.at);
    let status = "error";
    try {
      status = (JSON.parse(answer.body) as { status?: string }).status ?? "error";
    } catch {
      // counted as an error below
    }
    count(outcomes, `${answer.status}:${status}`);
  }
  return { latencies_ms: answeredAt.map((at) => at - started), outcomes, trigger_ms: triggerMs, trigger_statuses: triggerStatuses };
}

async function streams(config: Extract<HoldConfig, { mode: "streams" }>): Promise<HoldReport> {
  const outcomes: Record<string, number> = {};
  const deliveredAt: number[] = [];
  const abort = new AbortController();
  let started = Number.POSITIVE_INFINITY;
  let markReady: () => void = () => {};
  let open = 0;
  const allOpen = new Promise<void>((resolve) => (markReady = resolve));
  const readers = Array.from({ length: config.streams }, async () => {
    let isOpen = false;
    try {
      const res = await fetch(`${config.base}/v1/decisions/stream`, { headers: { "X-API-Key": config.key }, signal: abort.signal });
      if (res.status !== 200 || !res.body) {
        count(outcomes, `http:${res.status}`);
        return;
      }
      const decoder = new TextDecoder();
      let text = "";
      for await (const bytes of res.body) {
        text += decoder.decode(bytes, { stream: true });
        // The stream's first write (the reconnect delay) comes after its resume point is fixed.
        if (!isOpen && text.includes("retry:")) {
          isOpen = true;
          if (++open === config.streams) markReady();
        }
        const event = /^event: (.+)$/m.exec(text.slice(text.indexOf("retry:")));
        if (event && /^data: /m.test(text)) {
          if (performance.now() >= started) deliveredAt.push(performance.now());
          count(outcomes, event[1]!);
          return;
        }
      }
      count(outcomes, "closed");
    } catch (error) {
      if (!abort.signal.aborted) count(outcomes, `failed:${(error as Error).message}`);
    } finally {
      if (!isOpen && ++open === config.streams) markReady();
    }
  });
  await allOpen;
  console.log("ready");
  await nextLine();
  started = performance.now();
  const res = await fetch(`${config.base}/v1/decisions`, {
    method: "POST",
    headers: { "X-API-Key": config.creatorKey, "Content-Type": "application/json" },
    body: JSON.stringify({ kind: "deploy", title: "Deploy api v1.2.3", payload: { service: "api", version: "1.2.3" } }),
  });
  await res.arrayBuffer();
  const triggerMs = performance.now() - started;
  const deadline = setTimeout(() => abort.abort(), 30_000);
  await Promise.all(readers);
  clearTimeout(deadline);
  return { latencies_ms: deliveredAt.map((at) => at - started), outcomes, trigger_ms: triggerMs, trigger_statuses: { [res.status]: 1 } };
}

const config = JSON.parse(await nextLine()) as HoldConfig;
const report = config.mode === "waiters" ? await waiters(config) : await streams(config);
console.log(JSON.stringify(report));
process.exit(0);
