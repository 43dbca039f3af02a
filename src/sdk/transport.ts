import { ArbiterError, errorFromResponse } from "./errors";

/** the part of fetch the client uses, so any compatible implementation fits */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** the API's origin, e.g. `https://arbiter.example` */
  baseUrl: string;
  /** an API key (sent as `X-API-Key`) … */
  apiKey?: string;
  /** … or a service token (sent as `Authorization: Bearer`) */
  token?: string;
  /** a fetch implementation (tests, proxies, instrumented clients); the global fetch by default */
  fetch?: FetchLike;
  /** per-request timeout; a long-poll gets its wait on top. Default 30 s. */
  timeoutMs?: number;
  /** retries of a retryable request (see `send`). Default 3. */
  maxRetries?: number;
  /** first backoff delay when the server sends no Retry-After; doubles per retry. Default 500 ms. */
  retryBaseMs?: number;
  /** a Retry-After longer than this is not waited for: the error is thrown instead. Default 60 s. */
  maxRetryDelayMs?: number;
  /** sent as User-Agent where the runtime allows it */
  userAgent?: string;
}

export type Query = Record<string, string | number | boolean | Date | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** sent as Idempotency-Key: makes a POST safe to retry */
  idempotencyKey?: string;
  /** the request has no effect when repeated (GET, or a POST the server deduplicates) */
  idempotent?: boolean;
  /** extra time on top of the client's timeout (long-polls) */
  extraTimeoutMs?: number;
  signal?: AbortSignal;
}

const RETRYABLE_STATUSES = new Set([429, 503]);

/** seconds from a Retry-After header (delta-seconds or an HTTP date), or undefined */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - nowMs) / 1000));
}

export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError());
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

const abortedError = () => new ArbiterError({ status: 0, code: "aborted", message: "the request was aborted by the caller" });

/**
 * HTTP to the API: authentication, JSON, timeouts, error mapping and retries. Only requests that
 * are safe to repeat are retried (GETs, POSTs carrying an Idempotency-Key, and POSTs the server
 * deduplicates), and only on 429 and 503, waiting for Retry-After when the server sends it and an
 * exponential backoff with jitter otherwise. A non-idempotent POST is never sent twice.
 */
export class Transport {
  readonly baseUrl: string;
  private readonly fetchImpl: FetchLike;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseMs: number;
  private readonly maxRetryDelayMs: number;

  constructor(options: ClientOptions) {
    if (!options.baseUrl) throw new TypeError("baseUrl is required");
    if (!options.apiKey === !options.token) throw new TypeError("give exactly one of apiKey or token");
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.fetchImpl = options.fetch ?? ((url, init) => fetch(url, init));
    this.headers = options.apiKey ? { "X-API-Key": options.apiKey } : { Authorization: `Bearer ${options.token}` };
    if (options.userAgent) this.headers["User-Agent"] = options.userAgent;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxRetries = options.maxRetries ?? 3;
    this.retryBaseMs = options.retryBaseMs ?? 500;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 60_000;
  }

  async send<T>(method: "GET" | "POST" | "PATCH" | "DELETE", path: string, options: RequestOptions = {}): Promise<T> {
    const url = this.url(path, options.query);
    const headers: Record<string, string> = { ...this.headers, Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (options.idempotencyKey !== undefined) headers["Idempotency-Key"] = options.idempotencyKey;
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const retryable = method === "GET" || options.idempotencyKey !== undefined || options.idempotent === true;

    for (let attempt = 0; ; attempt++) {
      const response = await this.attempt(url, { method, headers, body }, options);
      if (response.ok) return (response.status === 204 ? undefined : await response.json()) as T;
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"), Date.now());
      const delayMs = retryAfter === undefined ? this.backoff(attempt) : retryAfter * 1000;
      if (!retryable || !RETRYABLE_STATUSES.has(response.status) || attempt >= this.maxRetries || delayMs > this.maxRetryDelayMs) {
        throw await errorFromResponse(response, retryAfter);
      }
      await response.body?.cancel().catch(() => {});
      await sleep(delayMs, options.signal);
    }
  }

  private url(path: string, query: Query | undefined): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined) params.set(name, value instanceof Date ? value.toISOString() : String(value));
    }
    const search = params.size > 0 ? `?${params}` : "";
    return `${this.baseUrl}${path}${search}`;
  }

  /**
   * A streaming GET (Server-Sent Events): the response once its headers arrived. The client's timeout
   * bounds only the wait for the headers, never the stream; an error answer throws ArbiterError.
   */
  async stream(path: string, options: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const connecting = new AbortController();
    const timer = setTimeout(() => connecting.abort(), this.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, connecting.signal]) : connecting.signal;
    let response: Response;
    try {
      const headers = { ...this.headers, Accept: "text/event-stream", ...options.headers };
      response = await this.fetchImpl(this.url(path, undefined), { method: "GET", headers, signal });
    } catch (error) {
      throw this.failure(error, options.signal, connecting.signal);
    } finally {
      clearTimeout(timer);
    }
    if (!response.ok) throw await errorFromResponse(response, parseRetryAfter(response.headers.get("retry-after"), Date.now()));
    return response;
  }

  private async attempt(url: string, init: RequestInit, options: RequestOptions): Promise<Response> {
    const timeout = AbortSignal.timeout(this.timeoutMs + (options.extraTimeoutMs ?? 0));
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      return await this.fetchImpl(url, { ...init, signal });
    } catch (error) {
      throw this.failure(error, options.signal, timeout);
    }
  }

  /** A fetch that threw, as ArbiterError: the caller's abort, the client's timeout, or the network. */
  private failure(error: unknown, callerSignal: AbortSignal | undefined, timeout: AbortSignal): ArbiterError {
    if (callerSignal?.aborted) return abortedError();
    if (timeout.aborted) return new ArbiterError({ status: 0, code: "timeout", message: `no answer from ${this.baseUrl} in time` });
    return new ArbiterError({
      status: 0,
      code: "network_error",
      message: `could not reach ${this.baseUrl}: ${error instanceof Error ? error.message : String(error)}`,
    });
  }

  /** exponential backoff with ±20 % jitter */
  private backoff(attempt: number): number {
    return Math.round(this.retryBaseMs * 2 ** attempt * (0.8 + Math.random() * 0.4));
  }
}
