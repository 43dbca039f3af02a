import { canonicalHash } from "../decisions/canonical-json";
import { items, pages } from "./pagination";
import type { Transport } from "./transport";
import type {
  ApproveRequest,
  CreateDecisionRequest,
  Decision,
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

const path = (id: string, verb?: string) => `/v1/decisions/${encodeURIComponent(id)}${verb ? `/${verb}` : ""}`;

export class DecisionsApi {
  constructor(private readonly http: Transport) {}

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
    while (decision.status === "pending") {
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) break;
      const wait = Math.min(MAX_POLL_SECONDS, Math.max(1, Math.ceil(remainingMs / 1000)));
      decision = await this.http.send("GET", path(id), { query: { wait }, extraTimeoutMs: wait * 1000, signal: options.signal });
    }
    return decision;
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
