import type { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { Principal } from "../auth/rbac";
import type { TokenSigner } from "../auth/tokens";
import { holdForEventStream, holdForLongPoll } from "../http/connection";
import type { AppEnv } from "../http/env";
import { badRequest, errorResponses } from "../http/errors";
import { keyCount, PLAIN_UUID, withFastPath } from "../http/fast-validation";
import { createRouter, defineRoute } from "../http/openapi";
import { eventJson, followEvents, latestEventId } from "./event-stream";
import { holdLimiterOf } from "./holds";
import { decisionJson, presentDecision } from "./present";
import { decisionReceipt } from "./receipts";
import {
  ApproveBody,
  CreateDecisionBody,
  DecisionEventSchema,
  DecisionId as DecisionIdSchema,
  DecisionPage,
  DecisionSchema,
  IdempotencyHeaders,
  ListQuery,
  MAX_WAIT_SECONDS,
  QueuePage,
  QueueQuery,
  ReasonBody,
  ReceiptSchema,
  RejectBody,
  StreamQuery,
  WaitQuery as WaitQuerySchema,
} from "./schemas";
import {
  approveDecision,
  cancelDecision,
  consumeDecision,
  createDecision,
  type DecisionDeps,
  escalateDecision,
  getDecision,
  listDecisions,
  listQueue,
  markDecisionChanged,
  notifierOf,
  rejectDecision,
  waitForDecision,
} from "./service";

// Every read and action names a decision by id, and every long-poll says how long to wait: the
// usual forms of both are recognised without running zod (see withFastPath).
export const DecisionId = withFastPath(DecisionIdSchema, (value) => {
  const { id } = value as { id?: unknown };
  return typeof id === "string" && keyCount(value as object) === 1 && PLAIN_UUID.test(id) ? { id } : undefined;
});
const WAIT_SECONDS = /^\d{1,2}$/;
export const WaitQuery = withFastPath(WaitQuerySchema, (value) => {
  const keys = keyCount(value as object);
  if (keys === 0) return {};
  const { wait } = value as { wait?: unknown };
  if (keys !== 1 || typeof wait !== "string" || !WAIT_SECONDS.test(wait)) return undefined;
  const seconds = Number(wait);
  return seconds <= MAX_WAIT_SECONDS ? { wait: seconds } : undefined;
});

const tags = ["decisions"];
const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { required: true, content: { "application/json": { schema } } } });
const optionalBody = <T extends z.ZodTypeAny>(schema: T) => ({ body: { required: false, content: { "application/json": { schema } } } });
const HEARTBEAT_MS = 15_000;
const RECONNECT_MS = 2_000;

const create = defineRoute("decisions:create", {
  operationId: "createDecision",
  method: "post",
  path: "/v1/decisions",
  tags,
  summary: "Ask for a decision (Idempotency-Key makes retries safe)",
  request: { headers: IdempotencyHeaders, ...body(CreateDecisionBody) },
  responses: {
    201: json(DecisionSchema, "Created"),
    200: json(DecisionSchema, "A retry with the same Idempotency-Key and body: the first answer"),
    ...errorResponses(422),
  },
});

const list = defineRoute("decisions:read", {
  operationId: "listDecisions",
  method: "get",
  path: "/v1/decisions",
  tags,
  summary: "List decisions, newest first (filters, cursor pagination)",
  request: { query: ListQuery },
  responses: { 200: json(DecisionPage, "A page") },
});

const queue = defineRoute("decisions:read", {
  operationId: "listPendingDecisions",
  method: "get",
  path: "/v1/decisions/pending",
  tags,
  summary: "The operator queue: pending, highest priority first, then oldest",
  request: { query: QueueQuery },
  responses: { 200: json(QueuePage, "A page") },
});

const stream = defineRoute("decisions:read", {
  operationId: "streamDecisionEvents",
  method: "get",
  path: "/v1/decisions/stream",
  tags,
  summary: "Server-Sent Events of every decision change; Last-Event-ID resumes from the audit trail",
  request: { query: StreamQuery },
  responses: {
    200: {
      description: "An event stream: each event's `data:` line is one DecisionEvent as JSON, carrying the decision itself",
      content: { "text/event-stream": { schema: DecisionEventSchema } },
    },
  },
});

const read = defineRoute("decisions:read", {
  operationId: "getDecision",
  method: "get",
  path: "/v1/decisions/{id}",
  tags,
  summary: "Read a decision; ?wait=N long-polls up to N seconds while it is pending",
  request: { params: DecisionId, query: WaitQuery },
  responses: { 200: json(DecisionSchema, "The decision") },
});

const receipt = defineRoute("decisions:read", {
  operationId: "getDecisionReceipt",
  method: "get",
  path: "/v1/decisions/{id}/receipt",
  tags,
  summary: "The signed receipt of a final decision: a JWS verifiable offline with /.well-known/jwks.json",
  request: { params: DecisionId },
  responses: { 200: json(ReceiptSchema, "The receipt"), ...errorResponses(409) },
});

const action = <P extends "decisions:resolve" | "decisions:escalate" | "decisions:cancel" | "decisions:create">(
  permission: P,
  verb: string,
  summary: string,
  request: ReturnType<typeof body> | ReturnType<typeof optionalBody> | Record<string, never>,
) =>
  defineRoute(permission, {
    operationId: `${verb}Decision`,
    method: "post",
    path: `/v1/decisions/{id}/${verb}`,
    tags,
    summary,
    request: { params: DecisionId, ...request },
    responses: { 200: json(DecisionSchema, "The decision after the change"), ...errorResponses(409, 422) },
  });

const approve = action(
  "decisions:resolve",
  "approve",
  "Approve (optionally with an edited payload); counts towards a quorum",
  optionalBody(ApproveBody),
);
const reject = action("decisions:resolve", "reject", "Reject, with a reason; one rejection rejects", body(RejectBody));
const escalate = action(
  "decisions:escalate",
  "escalate",
  "Raise the escalation level: an admin must then resolve it",
  optionalBody(ReasonBody),
);
const cancel = action("decisions:cancel", "cancel", "Withdraw a pending decision (requester only)", optionalBody(ReasonBody));
const consume = action("decisions:create", "consume", "Mark an approved decision as executed: succeeds once (requester only)", {});

const principalOf = (c: Context<AppEnv>): Principal => c.get("principal")!;

export function decisionRoutes(deps: DecisionDeps, signer: TokenSigner) {
  const notifier = notifierOf(deps);
  // The replica that made a change marked the cache before telling the others. Each other replica
  // marks the cache it uses too: its own when the cache is in-process, and a second chance when the
  // first write to a shared one failed.
  notifier.onChange((change, own) => {
    if (!own && !change.created) void markDecisionChanged(deps, change.id);
  });
  deps.meter
    .createObservableGauge("arbiter.decisions.waiters", { description: "Long-poll requests this process holds, waiting for a verdict" })
    .addCallback((result) => result.observe(notifier.waiting));

  return createRouter()
    .openapi(create, async (c) => {
      const { row, replayed } = await createDecision(deps, principalOf(c), c.req.valid("json"), c.req.valid("header")["idempotency-key"]);
      c.header("Location", `/v1/decisions/${row.id}`);
      if (replayed) {
        c.header("Idempotent-Replayed", "true");
        return c.json(presentDecision(row), 200);
      }
      return c.json(presentDecision(row), 201);
    })
    .openapi(list, async (c) => c.json(await listDecisions(deps, principalOf(c), c.req.valid("query")), 200))
    .openapi(queue, async (c) => c.json(await listQueue(deps, principalOf(c), c.req.valid("query")), 200))
    .openapi(stream, async (c) => {
      const after = resumeFrom(c, c.req.valid("query").last_event_id) ?? (await latestEventId(deps));
      return eventStreamResponse(c, deps, principalOf(c), after) as never;
    })
    .openapi(read, async (c) => {
      const { id } = c.req.valid("param");
      const { wait } = c.req.valid("query");
      const principal = principalOf(c);
      let row: Awaited<ReturnType<typeof getDecision>>;
      if (wait) {
        const release = holdLimiterOf(deps).acquire(principal);
        holdForLongPoll(c, deps.config.HTTP_IDLE_TIMEOUT_S);
        try {
          row = await waitForDecision(deps, principal, id, wait, c.req.raw.signal);
        } finally {
          release();
        }
      } else row = await getDecision(deps, principal, id);
      // The same bytes as c.json(presentDecision(row)), serialised once per row (see decisionJson).
      return c.body(decisionJson(row), 200, { "Content-Type": "application/json", "Cache-Control": "no-store" }) as never;
    })
    .openapi(receipt, async (c) => c.json(await decisionReceipt(deps, signer, principalOf(c), c.req.valid("param").id), 200))
    .openapi(approve, async (c) => {
      const input = validatedBody<z.infer<typeof ApproveBody>>(c);
      return c.json(presentDecision(await approveDecision(deps, principalOf(c), c.req.valid("param").id, input)), 200);
    })
    .openapi(reject, async (c) => {
      const { reason } = validatedBody<z.infer<typeof RejectBody>>(c);
      return c.json(presentDecision(await rejectDecision(deps, principalOf(c), c.req.valid("param").id, reason)), 200);
    })
    .openapi(escalate, async (c) => {
      const { reason } = validatedBody<z.infer<typeof ReasonBody>>(c);
      return c.json(presentDecision(await escalateDecision(deps, principalOf(c), c.req.valid("param").id, reason)), 200);
    })
    .openapi(cancel, async (c) => {
      const { reason } = validatedBody<z.infer<typeof ReasonBody>>(c);
      return c.json(presentDecision(await cancelDecision(deps, principalOf(c), c.req.valid("param").id, reason)), 200);
    })
    .openapi(consume, async (c) => c.json(presentDecision(await consumeDecision(deps, principalOf(c), c.req.valid("param").id)), 200));
}

/**
 * The decision events after `after` that `principal` may see, as Server-Sent Events until the client
 * goes away (or `endAfterMs` passes: an EventSource then reconnects with Last-Event-ID, so the caller
 * is authenticated again and no event is lost). The API's stream and the operator console's both
 * answer with this.
 */
export function eventStreamResponse(
  c: Context,
  deps: DecisionDeps,
  principal: Principal,
  after: number,
  options: { endAfterMs?: number } = {},
): Response {
  const release = holdLimiterOf(deps).acquire(principal);
  c.header("Cache-Control", "no-store");
  c.header("X-Accel-Buffering", "no"); // proxies must not buffer the stream
  const stream = streamSSE(c, async (sse) => {
    const stop = new AbortController();
    sse.onAbort(() => stop.abort());
    c.req.raw.signal.addEventListener("abort", () => stop.abort(), { once: true });
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    let end: ReturnType<typeof setTimeout> | undefined;
    try {
      // Sends the headers at once (some servers hold them until the first byte), sets the reconnect
      // delay and the resume point: a client that loses the stream before its first event still
      // reconnects with a Last-Event-ID, so nothing committed in between is missed.
      await sse.write(`retry: ${RECONNECT_MS}\nid: ${after}\n\n`);
      heartbeat = setInterval(() => void sse.write(": keep-alive\n\n").catch(() => stop.abort()), HEARTBEAT_MS);
      if (options.endAfterMs !== undefined) end = setTimeout(() => stop.abort(), options.endAfterMs);
      await followEvents(
        deps,
        principal,
        after,
        (event) => sse.writeSSE({ id: String(event.id), event: event.type, data: eventJson(event) }),
        stop.signal,
      );
    } finally {
      clearInterval(heartbeat);
      clearTimeout(end);
      release();
    }
  });
  return holdForEventStream(c, stream);
}

/** The resume point: Last-Event-ID (set by EventSource on reconnect) or ?last_event_id; else "from now". */
export function resumeFrom(c: Context, query: number | undefined): number | undefined {
  const header = c.req.header("last-event-id");
  if (header === undefined) return query;
  if (!/^\d{1,15}$/.test(header.trim())) throw badRequest("invalid_last_event_id", "Last-Event-ID must be an event id from this stream");
  return Number(header.trim());
}

/**
 * The JSON body the route validated (`{}` when an optional body was omitted). The action routes are
 * declared through one factory, which erases the body type; the route's schema still validated it.
 */
function validatedBody<T>(c: Context<AppEnv>): T {
  return ((c.req as unknown as { valid(target: "json"): T | undefined }).valid("json") ?? {}) as T;
}
