import { canonicalHash } from "../decisions/canonical-json";
import { ArbiterError } from "./errors";
import { items, pages } from "./pagination";
import type { ReceiptsApi } from "./receipts";
import { sseMessages } from "./sse";
import { sleep, type Transport } from "./transport";
import type {
  ApproveRequest,
  CreateDecisionRequest,
  Decision,
  DecisionEvent,
  ListDecisionsQuery,
  Page,
  PaginationOptions,
  QueuedDecision,
  ReasonRequest,
} from "./types";

/** the server's longest long-poll (`?wait=`): each poll stays below common proxy idle limits */
export const MAX_POLL_SECONDS = 55;

/**
 * True when `payload` is exactly what the decision allows to act on: the SHA-256 of its canonical
 * JSON (keys sorted, no whitespace) equals the decision's `effective_payload_hash`, which is the
 * requested payload's hash, or the edited payload's when an operator approved an edit. Check it
 * before acting, so that what runs is what a human approved.
 */
export const verifyPayload = (decision: Pick<Decision, "effective_payload_hash">, payload: unknown): boolean =>
  canonicalHash(payload) === decision.effective_payload_hash;

export interface WaitOptions {
  /** give up after this long and return the decision as it is (still pending). Default: until it settles. */
  timeoutSeconds?: number;
  signal?: AbortSignal;
}

export interface RequestApprovalOptions {
  /**
   * Makes the request safe to repeat: the same key answers the same decision, also after a restart
   * of the caller. Derive it from the task (e.g. `deploy-checkout-2.4.1-run-812`). Default: a random
   * key, which covers retries within this call only.
   */
  idempotencyKey?: string;
  /** stop waiting after this long and answer `approved: false` with the pending decision. Default: until it settles. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ApprovalResult {
  /**
   * true only when the decision is approved, not yet consumed, its signed receipt verifies, and the
   * receipt was signed over `payload`. Anything else (pending at the deadline included) is a no.
   */
  approved: boolean;
  decision: Decision;
  /** what to act on: the requested payload, or the operator's edited one when they approved an edit */
  payload: unknown;
  /** the signed receipt (a compact JWS) once the decision is final; null while pending */
  receipt: string | null;
}

export interface WatchOptions {
  /** resume after this event id (a DecisionEvent's `event_id`); default: from now */
  lastEventId?: number;
  signal?: AbortSignal;
}

/** Failures worth retrying while waiting: the network, a restarting server, a request still in flight. */
const isTransient = (error: unknown) =>
  error instanceof ArbiterError &&
  (error.code === "network_error" ||
    error.code === "timeout" ||
    error.code === "idempotency_conflict" ||
    [429, 502, 503, 504].includes(error.status));
const TRANSIENT_BACKOFF_MS = [250, 500, 1_000, 2_000, 4_000];

const path = (id: string, verb?: string) => `/v1/decisions/${encodeURIComponent(id)}${verb ? `/${verb}` : ""}`;

export class DecisionsApi {
  constructor(
    private readonly http: Transport,
    private readonly receipts: ReceiptsApi,
  ) {}

  /** Ask for a decision. With `idempotencyKey` a retry (also the client's own) answers the first decision. */
  create(request: CreateDecisionRequest, options: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<Decision> {
    return this.http.send("POST", "/v1/decisions", { body: request, idempotencyKey: options.idempotencyKey, signal: options.signal });
  }

  get(id: string, options: { signal?: AbortSignal } = {}): Promise<Decision> {
    return this.http.send("GET", path(id), options);
  }

  /** One page, newest first. */
  list(query: ListDecisionsQuery = {}): Promise<Page<Decision>> {
    return this.http.send("GET", "/v1/decisions", { query });
  }

  /** Every page of `list`, fetched as the loop advances. */
  pages(query: ListDecisionsQuery = {}): AsyncGenerator<Page<Decision>> {
    return pages((q) => this.list(q), query);
  }

  /** Every decision `list` would return, across pages: `for await (const d of client.decisions.listAll())`. */
  listAll(query: ListDecisionsQuery = {}): AsyncGenerator<Decision> {
    return items((q) => this.list(q), query);
  }

  /** The operator queue: pending, highest priority first, then oldest. */
  pending(query: PaginationOptions = {}): Promise<Page<QueuedDecision>> {
    return this.http.send("GET", "/v1/decisions/pending", { query });
  }

  pendingAll(query: PaginationOptions = {}): AsyncGenerator<QueuedDecision> {
    return items((q) => this.pending(q), query);
  }

  /**
   * Waits for a verdict by long-polling (each poll at most 55 s, again and again) until the decision
   * leaves `pending` or `timeoutSeconds` have passed; returns the decision either way, so check
   * `status`.
   */
  async waitFor(id: string, options: WaitOptions = {}): Promise<Decision> {
    const deadline = Date.now() + (options.timeoutSeconds ?? Number.POSITIVE_INFINITY) * 1000;
    let decision = await this.get(id, { signal: options.signal });
    while (decision.status === "pending" && deadline > Date.now()) decision = await this.poll(id, deadline, options.signal);
    return decision;
  }

  /** One long-poll, up to 55 s and at most until `deadline`. */
  private poll(id: string, deadline: number, signal: AbortSignal | undefined): Promise<Decision> {
    const wait = Math.min(MAX_POLL_SECONDS, Math.max(1, Math.ceil((deadline - Date.now()) / 1000)));
    return this.http.send("GET", path(id), { query: { wait }, extraTimeoutMs: wait * 1000, signal });
  }

  /**
   * "May I do this?" in one call: asks for a decision (idempotently), waits for the verdict with
   * long-polls, and checks that what was decided is exactly this payload, through the decision's
   * signed receipt. Network errors and restarts of either side are retried until the deadline, with
   * the same idempotency key, so a retry never asks twice. Act only when `approved` is true, on
   * `payload`, and mark the approval used with `consume(decision.id)`.
   */
  async requestApproval(request: CreateDecisionRequest, options: RequestApprovalOptions = {}): Promise<ApprovalResult> {
    const { signal } = options;
    const deadline = Date.now() + (options.timeoutMs ?? Number.POSITIVE_INFINITY);
    const idempotencyKey = options.idempotencyKey ?? crypto.randomUUID();
    const requestedHash = canonicalHash(request.payload);
    const persist = <T>(call: () => Promise<T>) => this.untilDeadline(call, deadline, signal);

    let decision = await persist(() => this.create(request, { idempotencyKey, signal }));
    if (decision.payload_hash !== requestedHash) {
      throw new ArbiterError({
        status: 0,
        code: "payload_hash_mismatch",
        message: "the server recorded a payload other than the one sent",
      });
    }
    while (decision.status === "pending" && deadline > Date.now()) {
      const id = decision.id;
      decision = await persist(() => this.poll(id, deadline, signal));
    }
    const payload = decision.approved_payload_hash === null ? request.payload : decision.approved_payload;
    if (decision.status === "pending") return { approved: false, decision, payload, receipt: null };

    const id = decision.id;
    const { receipt } = await persist(() => this.receipts.get(id, { signal }));
    // Throws ReceiptError when the receipt is not for this decision or was signed over another payload.
    const verified = await persist(() => this.receipts.verify(receipt, { payload, decisionId: id }));
    const approved = verified.approved && decision.status === "approved" && decision.consumed_at === null;
    return { approved, decision, payload, receipt };
  }

  /** Runs `call` again after transient failures, with a capped backoff, until it succeeds or `deadline` passes. */
  private async untilDeadline<T>(call: () => Promise<T>, deadline: number, signal: AbortSignal | undefined): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        const delayMs = TRANSIENT_BACKOFF_MS[Math.min(attempt, TRANSIENT_BACKOFF_MS.length - 1)]!;
        if (!isTransient(error) || Date.now() + delayMs >= deadline) throw error;
        await sleep(delayMs, signal);
      }
    }
  }

  /**
   * Every decision change the caller may see, as an async iterator over the Server-Sent Events
   * stream: each change once, in order. A dropped connection (or a server restart) reconnects with
   * Last-Event-ID after the server's retry delay, so nothing is lost or repeated. Stop with `break`
   * or the signal. Authentication and permission errors end the iteration with an ArbiterError.
   */
  async *watch(options: WatchOptions = {}): AsyncGenerator<DecisionEvent> {
    const { signal } = options;
    let lastId = options.lastEventId;
    let retryMs = 2_000;
    let failures = 0; // consecutive failed connections
    while (!signal?.aborted) {
      let response: Response | undefined;
      try {
        const headers: Record<string, string> = lastId === undefined ? {} : { "Last-Event-ID": String(lastId) };
        response = await this.http.stream("/v1/decisions/stream", { headers, signal });
      } catch (error) {
        if (signal?.aborted) return;
        if (!isTransient(error)) throw error;
        failures++;
      }
      if (response) {
        failures = 0;
        try {
          for await (const message of sseMessages(response.body!)) {
            if (message.retry !== undefined) retryMs = message.retry;
            const id = message.id === undefined ? Number.NaN : Number(message.id);
            // Ids only grow along the stream: one at or below the last seen would be a repeat.
            if (!Number.isSafeInteger(id) || (lastId !== undefined && id <= lastId)) continue;
            lastId = id;
            if (message.data !== undefined) yield JSON.parse(message.data) as DecisionEvent;
          }
        } catch {
          // The connection dropped mid-stream: reconnect below, from the last id seen.
          if (signal?.aborted) return;
        }
      }
      // The server's retry delay, longer after consecutive failed connections (a server still down).
      const backoffMs = TRANSIENT_BACKOFF_MS[Math.min(failures, TRANSIENT_BACKOFF_MS.length - 1)]!;
      await sleep(Math.max(retryMs, backoffMs), signal).catch(() => {});
    }
  }

  approve(id: string, request: ApproveRequest = {}): Promise<Decision> {
    return this.http.send("POST", path(id, "approve"), { body: request });
  }

  reject(id: string, reason: string): Promise<Decision> {
    return this.http.send("POST", path(id, "reject"), { body: { reason } });
  }

  escalate(id: string, request: ReasonRequest = {}): Promise<Decision> {
    return this.http.send("POST", path(id, "escalate"), { body: request });
  }

  cancel(id: string, request: ReasonRequest = {}): Promise<Decision> {
    return this.http.send("POST", path(id, "cancel"), { body: request });
  }

  /** Marks an approved decision as executed: succeeds once; a later call is 409 `already_consumed`. */
  consume(id: string): Promise<Decision> {
    return this.http.send("POST", path(id, "consume"));
  }

  verifyPayload(decision: Pick<Decision, "effective_payload_hash">, payload: unknown): boolean {
    return verifyPayload(decision, payload);
  }
}
