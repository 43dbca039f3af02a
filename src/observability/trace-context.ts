import type { RequestHook } from "../http/request-hooks";

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): a request's `traceparent` is accepted
 * when well-formed, so Arbiter's log lines join the caller's trace; otherwise a new trace starts.
 * Each request gets its own span id, echoed back in the response's `traceparent`.
 */
export interface TraceContext {
  /** 32 lowercase hex digits */
  traceId: string;
  /** this request's span: 16 lowercase hex digits */
  spanId: string;
  /** the caller's span, when the trace was continued */
  parentSpanId?: string;
  sampled: boolean;
  /** the caller's `tracestate`, passed on unchanged */
  traceState?: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ALL_ZERO = /^0+$/;

/** Parses a `traceparent` header; undefined when it is absent or malformed (the spec says: start a new trace). */
export function parseTraceparent(
  header: string | null | undefined,
): { traceId: string; parentSpanId: string; sampled: boolean } | undefined {
  const match = TRACEPARENT.exec(header?.trim() ?? "");
  if (!match) return undefined;
  const [, version, traceId, parentSpanId, flags, rest] = match as unknown as [string, string, string, string, string, string?];
  // Version ff is invalid; version 00 has no trailing fields; ids of all zeros are invalid.
  if (version === "ff" || (version === "00" && rest) || ALL_ZERO.test(traceId) || ALL_ZERO.test(parentSpanId)) return undefined;
  return { traceId, parentSpanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

export function formatTraceparent(context: Pick<TraceContext, "traceId" | "spanId" | "sampled">): string {
  return `00-${context.traceId}-${context.spanId}-${context.sampled ? "01" : "00"}`;
}

const HEX_BYTE = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
// One draw of random bytes per request: 16 for the trace id (when a new trace starts), 8 for the span.
const randomBytes = new Uint8Array(24);

/** Lowercase hex of `bytes` random bytes (from `offset` in this request's draw); never all zeros. */
function randomHex(bytes: number, offset: number): string {
  // Tested on the bytes, not with a regex on the hex: that flattened the string just built, every request.
  let any = 0;
  for (let i = offset; i < offset + bytes; i++) any |= randomBytes[i]!;
  if (any === 0) {
    crypto.getRandomValues(randomBytes);
    return randomHex(bytes, offset);
  }
  let hex = "";
  for (let i = offset; i < offset + bytes; i++) hex += HEX_BYTE[randomBytes[i]!];
  return hex;
}

/** Sets `c.var.trace` (a call made on the request's behalf continues it with `formatTraceparent(c.var.trace)`) and answers with this request's `traceparent`. */
export function traceContext(): RequestHook<TraceContext> {
  return {
    before(c) {
      const headers = c.req.raw.headers;
      const incoming = parseTraceparent(headers.get("traceparent"));
      const traceState = incoming ? headers.get("tracestate")?.slice(0, 512) : undefined;
      crypto.getRandomValues(randomBytes);
      const trace: TraceContext = {
        traceId: incoming?.traceId ?? randomHex(16, 8),
        spanId: randomHex(8, 0),
        sampled: incoming?.sampled ?? true,
        ...(incoming ? { parentSpanId: incoming.parentSpanId } : {}),
        ...(traceState ? { traceState } : {}),
      };
      c.set("trace", trace);
      return trace;
    },
    after(c, trace) {
      // On the finished response's own headers: c.header() would copy the whole response to add one.
      if (c.finalized) c.res.headers.set("traceparent", formatTraceparent(trace));
    },
  };
}
