/**
 * Every failure the client reports: an error answer of the API (its `code`, `message` and `details`,
 * the HTTP status and the `X-Request-Id` to quote to an operator), or a transport failure with
 * status 0 (`network_error`, `timeout`, `aborted`).
 */
export class ArbiterError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly requestId: string | undefined;
  /** seconds from `Retry-After` on a 429/503, when the server sent one */
  readonly retryAfterSeconds: number | undefined;

  constructor(init: { status: number; code: string; message: string; details?: unknown; requestId?: string; retryAfterSeconds?: number }) {
    super(init.message);
    this.name = "ArbiterError";
    this.status = init.status;
    this.code = init.code;
    this.details = init.details;
    this.requestId = init.requestId;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

interface ErrorEnvelope {
  error?: { code?: unknown; message?: unknown; details?: unknown };
}

/** An error answer → ArbiterError; a body that is not Arbiter's error shape still yields a useful code. */
export async function errorFromResponse(response: Response, retryAfterSeconds: number | undefined): Promise<ArbiterError> {
  const text = await response.text().catch(() => "");
  let envelope: ErrorEnvelope | null = null;
  try {
    envelope = JSON.parse(text) as ErrorEnvelope | null;
  } catch {
    // not JSON (a proxy's error page): fall back to the status below
  }
  // `?.`: a JSON `null` body is valid JSON but no envelope
  const error = envelope?.error ?? {};
  return new ArbiterError({
    status: response.status,
    code: typeof error.code === "string" ? error.code : `http_${response.status}`,
    message: typeof error.message === "string" ? error.message : response.statusText || `HTTP ${response.status}`,
    details: error.details,
    requestId: response.headers.get("x-request-id") ?? undefined,
    retryAfterSeconds,
  });
}
