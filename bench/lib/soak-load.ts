/**
 * The soak's load: a fixed, open-loop mix of Arbiter's operations (each started on a schedule, not
 * after the previous one answered, so a slow server shows as latency and in-flight requests rather
 * than as a lower rate), SSE streams held open and rotated, and a ledger of every write the server
 * acknowledged, for the database check at the end.
 */
import type { Keys } from "./stack";

/** Operations started per second, and the held connections. */
export interface SoakRates {
  /** GET one decision, the list, the operator queue, telemetry events (in turn) */
  reads: number;
  /** POST /v1/decisions with an Idempotency-Key */
  creates: number;
  /** POST …/approve of the oldest pending decision */
  approvals: number;
  /** POST …/reject of the oldest pending decision */
  rejections: number;
  /** POST …/consume of an approved decision */
  consumes: number;
  /** POST /v1/telemetry/events with `telemetry_batch` events, each with an id */
  telemetry_batches: number;
  telemetry_batch: number;
  /** GET /v1/decisions/:id?wait=… of a pending decision */
  long_polls: number;
  long_poll_wait_s: number;
  /** SSE streams held open all along, each closed and resumed (Last-Event-ID) every `stream_rotate_s` */
  streams: number;
  stream_rotate_s: number;
}

export type Operation = "read" | "create" | "approve" | "reject" | "consume" | "telemetry" | "long_poll" | "stream";

/** Every write the server acknowledged with a 2xx. */
export interface Ledger {
  /** Idempotency-Key → decision id, of every 201 */
  creates: Map<string, string>;
  approved: Set<string>;
  rejected: Set<string>;
  consumed: Set<string>;
  /** ids of every event in a 202 batch */
  telemetryIds: string[];
}

export interface OperationStats {
  sent: number;
  ok: number;
  errors: number;
  latencies_ms: number[];
}

export interface SoakError {
  at_s: number;
  operation: Operation;
  detail: string;
}

/** What each held stream saw: its change events by `<type>:<decision id>` (a repeat is counted, not hidden). */
interface StreamState {
  changes: Map<string, number>;
  lastEventId?: string;
  opens: number;
  events: number;
}

const REQUEST_TIMEOUT_MS = 10_000;
const decisionBody = { kind: "deploy", title: "Deploy api v1.2.3", payload: { service: "api", version: "1.2.3" }, priority: "medium" };

export function createSoakLoad(base: string, keys: Keys, rates: SoakRates) {
  const began = performance.now();
  const run = crypto.randomUUID().slice(0, 8);
  const ledger: Ledger = { creates: new Map(), approved: new Set(), rejected: new Set(), consumed: new Set(), telemetryIds: [] };
  const stats = new Map<Operation, OperationStats>();
  const errors: SoakError[] = [];
  const inFlight = new Set<Promise<void>>();
  /** the most requests in flight at once since the last `takePeakInFlight()` */
  let peakInFlight = 0;
  /** created decisions not yet picked for a verdict, oldest first */
  const pending: string[] = [];
  const approvedUnconsumed: string[] = [];
  /** the latest decisions created, for reads */
  const recent: string[] = [];
  let creates = 0;
  let batches = 0;
  let reads = 0;

  const statsOf = (operation: Operation) => {
    let s = stats.get(operation);
    if (!s) stats.set(operation, (s = { sent: 0, ok: 0, errors: 0, latencies_ms: [] }));
    return s;
  };
  const fail = (operation: Operation, detail: string) => {
    statsOf(operation).errors++;
    errors.push({ at_s: Math.round((performance.now() - began) / 100) / 10, operation, detail: detail.slice(0, 300) });
  };

  /** One request; `accept` checks a 2xx body and says what was wrong, or records what it acknowledged. */
  function request(
    operation: Operation,
    path: string,
    key: string,
    init: { method?: string; json?: unknown; headers?: Record<string, string>; timeoutMs?: number; expect: number },
    accept: (body: Record<string, unknown>) => string | undefined = () => undefined,
  ) {
    const s = statsOf(operation);
    s.sent++;
    const started = performance.now();
    const done = (async () => {
      try {
        const res = await fetch(base + path, {
          method: init.method ?? "GET",
          headers: { "X-API-Key": key, ...(init.json === undefined ? {} : { "Content-Type": "application/json" }), ...init.headers },
          ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
          signal: AbortSignal.timeout(init.timeoutMs ?? REQUEST_TIMEOUT_MS),
        });
        const text = await res.text();
        if (res.status !== init.expect) return fail(operation, `${init.method ?? "GET"} ${path} answered ${res.status}: ${text}`);
        const problem = accept(JSON.parse(text) as Record<string, unknown>);
        if (problem) return fail(operation, `${init.method ?? "GET"} ${path}: ${problem}`);
        s.ok++;
        s.latencies_ms.push(performance.now() - started);
      } catch (error) {
        fail(operation, `${init.method ?? "GET"} ${path} failed: ${(error as Error).message}`);
      }
    })();
    inFlight.add(done);
    peakInFlight = Math.max(peakInFlight, inFlight.size);
    void done.finally(() => inFlight.delete(done));
  }

  const operations: Record<Exclude<Operation, "stream">, () => void> = {
    read() {
      const id = recent[Math.floor(Math.random() * recent.length)];
      const paths = [id ? `/v1/decisions/${id}` : "/v1/decisions?limit=20", "/v1/decisions?limit=20", "/v1/decisions/pending?limit=20"];
      const telemetry = reads++ % 4 === 3;
      request("read", telemetry ? "/v1/telemetry/events?limit=20" : paths[reads % 3]!, telemetry ? keys.admin : keys.service, {
        expect: 200,
      });
    },
    create() {
      const idempotencyKey = `soak-${run}-${++creates}`;
      request(
        "create",
        "/v1/decisions",
        keys.service,
        { method: "POST", json: decisionBody, headers: { "Idempotency-Key": idempotencyKey }, expect: 201 },
        (body) => {
          if (typeof body.id !== "string") return "no id in the answer";
          ledger.creates.set(idempotencyKey, body.id);
          pending.push(body.id);
          recent.push(body.id);
          if (recent.length > 500) recent.shift();
          return undefined;
        },
      );
    },
    approve() {
      const id = pending.shift();
      if (!id) return;
      request(
        "approve",
        `/v1/decisions/${id}/approve`,
        keys.operator,
        { method: "POST", json: { reason: "soak" }, expect: 200 },
        (body) => {
          if (body.status !== "approved") return `status ${String(body.status)}`;
          ledger.approved.add(id);
          approvedUnconsumed.push(id);
          return undefined;
        },
      );
    },
    reject() {
      const id = pending.shift();
      if (!id) return;
      request("reject", `/v1/decisions/${id}/reject`, keys.operator, { method: "POST", json: { reason: "soak" }, expect: 200 }, (body) => {
        if (body.status !== "rejected") return `status ${String(body.status)}`;
        ledger.rejected.add(id);
        return undefined;
      });
    },
    consume() {
      const id = approvedUnconsumed.shift();
      if (!id) return;
      request("consume", `/v1/decisions/${id}/consume`, keys.service, { method: "POST", expect: 200 }, (body) => {
        if (!body.consumed_at) return "no consumed_at in the answer";
        ledger.consumed.add(id);
        return undefined;
      });
    },
    telemetry() {
      const batch = ++batches;
      const occurredAt = new Date().toISOString();
      const events = Array.from({ length: rates.telemetry_batch }, (_, i) => ({
        id: `soak-${run}-${batch}-${i}`,
        type: "agent.step",
        source: `agent-${i % 8}`,
        severity: "info",
        occurred_at: occurredAt,
        attributes: { step: i, batch },
      }));
      request("telemetry", "/v1/telemetry/events", keys.service, { method: "POST", json: { events }, expect: 202 }, (body) => {
        if (body.accepted !== events.length) return `accepted ${String(body.accepted)} of ${events.length} new events`;
        for (const e of events) ledger.telemetryIds.push(e.id);
        return undefined;
      });
    },
    long_poll() {
      const id = pending[Math.floor(Math.random() * pending.length)];
      if (!id) return;
      request("long_poll", `/v1/decisions/${id}?wait=${rates.long_poll_wait_s}`, keys.service, {
        expect: 200,
        timeoutMs: rates.long_poll_wait_s * 1000 + REQUEST_TIMEOUT_MS,
      });
    },
  };

  const schedule: [Exclude<Operation, "stream">, number][] = [
    ["read", rates.reads],
    ["create", rates.creates],
    ["approve", rates.approvals],
    ["reject", rates.rejections],
    ["consume", rates.consumes],
    ["telemetry", rates.telemetry_batches],
    ["long_poll", rates.long_polls],
  ];

  // ————— SSE streams —————
  const streams: StreamState[] = [];
  const streamLoops: Promise<void>[] = [];
  let streaming = true;
  const streamAbort = new AbortController();

  /** Reads one connection of a stream until `rotateAt` (then closes it itself) or the end of the run; anything else is an error. */
  async function readStream(state: StreamState, rotateAt: number, opened: () => void): Promise<void> {
    const abort = new AbortController();
    const stopAll = () => abort.abort();
    streamAbort.signal.addEventListener("abort", stopAll);
    const timer = setTimeout(() => abort.abort(), Math.max(0, rotateAt - performance.now()));
    const s = statsOf("stream");
    s.sent++;
    try {
      const res = await fetch(`${base}/v1/decisions/stream`, {
        headers: { "X-API-Key": keys.operator, ...(state.lastEventId ? { "Last-Event-ID": state.lastEventId } : {}) },
        signal: abort.signal,
      });
      if (res.status !== 200 || !res.body) return fail("stream", `GET /v1/decisions/stream answered ${res.status}: ${await res.text()}`);
      state.opens++;
      const decoder = new TextDecoder();
      let buffered = "";
      let isOpen = false;
      for await (const bytes of res.body) {
        buffered += decoder.decode(bytes, { stream: true });
        let end = buffered.indexOf("\n\n");
        while (end >= 0) {
          const frame = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          end = buffered.indexOf("\n\n");
          if (!isOpen && frame.includes("retry:")) {
            isOpen = true;
            opened();
          }
          const id = /^id: (.+)$/m.exec(frame)?.[1];
          const type = /^event: (.+)$/m.exec(frame)?.[1];
          const data = /^data: (.+)$/m.exec(frame)?.[1];
          if (!id || !type || !data) continue;
          state.lastEventId = id;
          state.events++;
          const change = `${type}:${(JSON.parse(data) as { decision_id: string }).decision_id}`;
          state.changes.set(change, (state.changes.get(change) ?? 0) + 1);
        }
      }
      fail("stream", "the server ended an event stream");
    } catch (error) {
      if (!abort.signal.aborted) fail("stream", `event stream failed: ${(error as Error).message}`);
      else s.ok++;
    } finally {
      clearTimeout(timer);
      streamAbort.signal.removeEventListener("abort", stopAll);
    }
  }

  /** Opens every stream (resolving once each has sent its first frame) and keeps them open, rotating each, until `stop()`. */
  function openStreams(): Promise<void> {
    let openedCount = 0;
    let allOpen: () => void = () => {};
    const opened = new Promise<void>((resolve) => (allOpen = resolve));
    for (let i = 0; i < rates.streams; i++) {
      const state: StreamState = { changes: new Map(), opens: 0, events: 0 };
      streams.push(state);
      let first = true;
      streamLoops.push(
        (async () => {
          // Staggered, so the streams do not all reconnect in the same instant.
          let rotateAt = performance.now() + rates.stream_rotate_s * 1000 * (1 + i / rates.streams);
          while (streaming) {
            await readStream(state, rotateAt, () => {
              if (first && ++openedCount === rates.streams) allOpen();
              first = false;
            });
            rotateAt = performance.now() + rates.stream_rotate_s * 1000;
          }
        })(),
      );
    }
    return opened;
  }

  // ————— The schedule —————
  let ticker: ReturnType<typeof setInterval> | undefined;

  return {
    ledger,
    stats,
    errors,
    streams,
    openStreams,
    inFlight: () => inFlight.size,
    /** the most requests in flight at once since the previous call (each may have opened a connection the client keeps) */
    takePeakInFlight() {
      const peak = peakInFlight;
      peakInFlight = inFlight.size;
      return peak;
    },
    /** starts the schedule: every operation at its rate, credit accrued every 50 ms */
    start() {
      const credit = new Map<Operation, number>();
      let last = performance.now();
      ticker = setInterval(() => {
        const now = performance.now();
        const elapsed = (now - last) / 1000;
        last = now;
        for (const [operation, rate] of schedule) {
          let c = (credit.get(operation) ?? 0) + rate * elapsed;
          for (; c >= 1; c--) operations[operation]();
          credit.set(operation, c);
        }
      }, 50);
    },
    /** stops starting requests and waits for those in flight */
    async stopRequests() {
      clearInterval(ticker);
      while (inFlight.size) await Promise.all([...inFlight]);
    },
    /** the acknowledged changes a stream has not delivered exactly once (empty when every stream delivered every one) */
    streamGaps(): { stream: number; missing: number; repeated: number }[] {
      const acknowledged = [
        ...[...ledger.creates.values()].map((id) => `created:${id}`),
        ...[...ledger.approved].map((id) => `approved:${id}`),
        ...[...ledger.rejected].map((id) => `rejected:${id}`),
        ...[...ledger.consumed].map((id) => `consumed:${id}`),
      ];
      return streams
        .map((state, stream) => {
          let missing = 0;
          let repeated = 0;
          for (const change of acknowledged) {
            const seen = state.changes.get(change) ?? 0;
            if (seen === 0) missing++;
            if (seen > 1) repeated++;
          }
          return { stream, missing, repeated };
        })
        .filter((g) => g.missing || g.repeated);
    },
    async closeStreams() {
      streaming = false;
      streamAbort.abort();
      await Promise.all(streamLoops);
    },
  };
}

export type SoakLoad = ReturnType<typeof createSoakLoad>;
