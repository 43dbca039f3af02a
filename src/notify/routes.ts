import { z } from "@hono/zod-openapi";
import { asc, eq } from "drizzle-orm";
import type { Context } from "hono";
import { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { requestMeta } from "../auth/middleware";
import type { AuthRuntime } from "../auth/runtime";
import { DECISION_PRIORITIES, NOTIFICATION_CHANNELS, NOTIFICATION_DELIVERY_STATUSES, notificationDeliveries } from "../db/schema";
import { KIND_PATTERN } from "../decisions/schemas";
import { getDecision } from "../decisions/service";
import type { AppEnv } from "../http/env";
import { ApiError, errorBody, errorResponses } from "../http/errors";
import { createRouter, defineRoute } from "../http/openapi";
import { PaginationQuery, pageSchema } from "../http/pagination";
import { checkEmailLink, handleSlackInteraction, SlackInteraction, useEmailLink } from "./actions";
import { actionPage, emailLinkSigner, escapeHtml } from "./email";
import {
  createNotificationRoute,
  getNotificationRoute,
  listNotificationRoutes,
  type RouteInput,
  routeView,
  updateNotificationRoute,
} from "./routes-service";
import { createSlackApi, verifySlackSignature } from "./slack";

const IdParam = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" }, example: "01938f4e-7c1a-7b3e-9d2f-5a6b7c8d9e0f" }) });
/** A channel id (C…, G…, D…) or a #name. */
const SlackChannel = z.string().regex(/^(#[a-z0-9._-]{1,80}|[CGD][A-Z0-9]{2,20})$/, "a Slack channel id (C…) or #name");
const Target = z
  .discriminatedUnion("type", [
    z.strictObject({ type: z.literal("slack_channel"), channel: SlackChannel }),
    z.strictObject({
      type: z.literal("people"),
      operator_ids: z.array(z.uuid()).min(1).max(100),
      via: z.array(z.enum(NOTIFICATION_CHANNELS)).min(1).max(2),
    }),
    z.strictObject({
      type: z.literal("email"),
      addresses: z
        .array(
          z
            .email()
            .max(254)
            .transform((a) => a.toLowerCase()),
        )
        .min(1)
        .max(100),
    }),
  ])
  .openapi("NotificationTarget");
const RouteFields = {
  name: z.string().trim().min(1).max(128),
  kinds: z.array(z.string().regex(KIND_PATTERN)).min(1).max(50).nullable().describe("null or absent: every kind"),
  min_priority: z.enum(DECISION_PRIORITIES).nullable().describe("this priority and above; null: every priority"),
  level: z.number().int().min(0).max(3).describe("0: told when a decision is created; N: when it is escalated to N"),
  policy_outcome: z
    .enum(["require"])
    .nullable()
    .describe("require: only decisions an enforced policy rule sent to people; null: every decision"),
  targets: z.array(Target).min(1).max(20),
  escalate_after_seconds: z
    .number()
    .int()
    .min(10)
    .max(30 * 86_400)
    .nullable()
    .describe("decisions this route is told about escalate one level when nobody decided within this long"),
  enabled: z.boolean(),
};
export const CreateRouteBody = z
  .strictObject({
    ...RouteFields,
    kinds: RouteFields.kinds.optional(),
    min_priority: RouteFields.min_priority.optional(),
    level: RouteFields.level.default(0),
    policy_outcome: RouteFields.policy_outcome.optional(),
    escalate_after_seconds: RouteFields.escalate_after_seconds.optional(),
    enabled: RouteFields.enabled.default(true),
  })
  .openapi("CreateNotificationRoute", {
    example: {
      name: "payments on-call",
      kinds: ["refund"],
      min_priority: "high",
      level: 0,
      targets: [{ type: "slack_channel", channel: "#payments-approvals" }],
      escalate_after_seconds: 900,
      enabled: true,
    },
  });
export const UpdateRouteBody = z
  .strictObject({
    name: RouteFields.name.optional(),
    kinds: RouteFields.kinds.optional(),
    min_priority: RouteFields.min_priority.optional(),
    level: RouteFields.level.optional(),
    policy_outcome: RouteFields.policy_outcome.optional(),
    targets: RouteFields.targets.optional(),
    escalate_after_seconds: RouteFields.escalate_after_seconds.optional(),
    enabled: RouteFields.enabled.optional(),
  })
  .refine((body) => Object.values(body).some((value) => value !== undefined), "give at least one field to change")
  .openapi({ minProperties: 1, example: { enabled: false } });
export const NotificationRouteSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    kinds: z.array(z.string()).nullable(),
    min_priority: z.enum(DECISION_PRIORITIES).nullable(),
    level: z.number().int(),
    policy_outcome: z.enum(["require"]).nullable(),
    targets: z.array(Target),
    escalate_after_seconds: z.number().int().nullable(),
    enabled: z.boolean(),
    created_by: z.uuid().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("NotificationRoute");
export const NotificationDeliverySchema = z
  .object({
    id: z.uuid(),
    route_id: z.uuid().nullable(),
    event_id: z.number().int().describe("the decision audit event it tells about"),
    channel: z.enum(NOTIFICATION_CHANNELS),
    target: z.string().describe("a Slack channel or user id, or an email address"),
    operator_id: z.uuid().nullable(),
    purpose: z.enum(["request", "update"]),
    status: z.enum(NOTIFICATION_DELIVERY_STATUSES),
    attempts: z.number().int(),
    last_error: z.string().nullable(),
    created_at: z.string(),
    sent_at: z.string().nullable(),
    next_attempt_at: z.string().nullable().describe("while pending"),
  })
  .openapi("NotificationDelivery");

const json = <T extends z.ZodTypeAny>(schema: T) => ({ content: { "application/json": { schema } } });

const createRoute = defineRoute("notifications:manage", {
  operationId: "createNotificationRoute",
  method: "post",
  path: "/v1/notification-routes",
  tags: ["notifications"],
  summary: "Choose who is told about which decisions, and where (Slack, email)",
  request: { body: { required: true, ...json(CreateRouteBody) } },
  responses: { 201: { description: "Created", ...json(NotificationRouteSchema) }, ...errorResponses(422) },
});
const listRoutes = defineRoute("notifications:manage", {
  operationId: "listNotificationRoutes",
  method: "get",
  path: "/v1/notification-routes",
  tags: ["notifications"],
  summary: "Notification routes, newest first",
  request: { query: PaginationQuery },
  responses: { 200: { description: "A page of routes", ...json(pageSchema(NotificationRouteSchema)) } },
});
const getRoute = defineRoute("notifications:manage", {
  operationId: "getNotificationRoute",
  method: "get",
  path: "/v1/notification-routes/{id}",
  tags: ["notifications"],
  summary: "One notification route",
  request: { params: IdParam },
  responses: { 200: { description: "The route", ...json(NotificationRouteSchema) } },
});
const updateRoute = defineRoute("notifications:manage", {
  operationId: "updateNotificationRoute",
  method: "patch",
  path: "/v1/notification-routes/{id}",
  tags: ["notifications"],
  summary: "Change or disable a notification route",
  request: { params: IdParam, body: { required: true, ...json(UpdateRouteBody) } },
  responses: { 200: { description: "The route", ...json(NotificationRouteSchema) }, ...errorResponses(422) },
});
const listDeliveries = defineRoute("audit:read", {
  operationId: "listDecisionNotifications",
  method: "get",
  path: "/v1/decisions/{id}/notifications",
  tags: ["notifications"],
  summary: "The delivery log of one decision: every message sent, updated, skipped or failed",
  request: { params: IdParam },
  responses: { 200: { description: "Deliveries, oldest first", ...json(z.object({ data: z.array(NotificationDeliverySchema) })) } },
});

const toRouteInput = <T extends Record<string, unknown>>(body: T): Partial<RouteInput> => {
  const input: Partial<RouteInput> = {};
  if (body.name !== undefined) input.name = body.name as string;
  if (body.kinds !== undefined) input.kinds = body.kinds as string[] | null;
  if (body.min_priority !== undefined) input.minPriority = body.min_priority as RouteInput["minPriority"];
  if (body.level !== undefined) input.level = body.level as number;
  if (body.policy_outcome !== undefined) input.policyOutcome = body.policy_outcome as "require" | null;
  if (body.targets !== undefined) input.targets = body.targets as RouteInput["targets"];
  if (body.escalate_after_seconds !== undefined) input.escalateAfterSeconds = body.escalate_after_seconds as number | null;
  if (body.enabled !== undefined) input.enabled = body.enabled as boolean;
  return input;
};

/** Notification routes and the delivery log: parse → service → shape. */
export function notificationRoutes(auth: AuthRuntime) {
  const { deps } = auth;
  const meta = (c: Context<AppEnv>) => requestMeta(c, deps.config.TRUST_PROXY_HOPS);
  return createRouter()
    .openapi(createRoute, async (c) => {
      const body = c.req.valid("json");
      const input = {
        kinds: null,
        minPriority: null,
        policyOutcome: null,
        escalateAfterSeconds: null,
        ...toRouteInput(body),
      } as RouteInput;
      const row = await createNotificationRoute(auth.keyService, c.get("principal")!, input, meta(c));
      return c.json(routeView(row), 201);
    })
    .openapi(listRoutes, async (c) => c.json(await listNotificationRoutes(deps.database.db, c.req.valid("query")), 200))
    .openapi(getRoute, async (c) => c.json(routeView(await getNotificationRoute(deps.database.db, c.req.valid("param").id)), 200))
    .openapi(updateRoute, async (c) => {
      const row = await updateNotificationRoute(
        auth.keyService,
        c.get("principal")!,
        c.req.valid("param").id,
        toRouteInput(c.req.valid("json")),
        meta(c),
      );
      return c.json(routeView(row), 200);
    })
    .openapi(listDeliveries, async (c) => {
      const { id } = c.req.valid("param");
      await getDecision(deps, c.get("principal")!, id); // 404 for an unknown decision
      const rows = await deps.database.db
        .select()
        .from(notificationDeliveries)
        .where(eq(notificationDeliveries.decisionId, id))
        .orderBy(asc(notificationDeliveries.createdAt), asc(notificationDeliveries.id));
      const data = rows.map((row) => ({
        id: row.id,
        route_id: row.routeId,
        event_id: row.eventId,
        channel: row.channel,
        target: row.target,
        operator_id: row.operatorId,
        purpose: row.purpose,
        status: row.status,
        attempts: row.attempts,
        last_error: row.lastError,
        created_at: row.createdAt.toISOString(),
        sent_at: row.sentAt?.toISOString() ?? null,
        next_attempt_at: row.status === "pending" ? row.nextAttemptAt.toISOString() : null,
      }));
      return c.json({ data }, 200);
    });
}

/**
 * The endpoints Slack and email recipients reach: not under /v1 (no API key; each request carries its
 * own proof, a Slack signature or a signed link) and not in the OpenAPI document.
 */
export function integrationRoutes(auth: AuthRuntime) {
  const { deps } = auth;
  const config = deps.config;
  const slack = config.SLACK_BOT_TOKEN ? createSlackApi(config.SLACK_BOT_TOKEN, config.SLACK_API_URL) : undefined;
  const links = config.EMAIL_LINK_SECRET ? emailLinkSigner(config.EMAIL_LINK_SECRET) : undefined;
  const app = new Hono<AppEnv>();

  app.post("/integrations/slack/interactions", async (c) => {
    if (!config.SLACK_SIGNING_SECRET) return c.json(errorBody("not_found", "Slack is not configured on this server"), 404);
    const raw = await c.req.text();
    const verified = verifySlackSignature(
      config.SLACK_SIGNING_SECRET,
      { timestamp: c.req.header("x-slack-request-timestamp"), signature: c.req.header("x-slack-signature") },
      raw,
      deps.clock.now().getTime(),
    );
    if (!verified.ok) {
      deps.logger.warn("slack interaction refused", { reason: verified.reason, address: requestMeta(c, config.TRUST_PROXY_HOPS).address });
      return c.json(errorBody("invalid_signature", `the Slack signature is not valid: ${verified.reason}`), 401);
    }
    let interaction: SlackInteraction;
    try {
      const parsed = SlackInteraction.safeParse(JSON.parse(new URLSearchParams(raw).get("payload") ?? ""));
      if (!parsed.success) return c.json({}, 200); // an interaction type Arbiter does not handle: acknowledged, ignored
      interaction = parsed.data;
    } catch {
      return c.json(errorBody("invalid_payload", "the body must be form-encoded with a JSON `payload`"), 400);
    }
    return c.json(await handleSlackInteraction(deps, slack, interaction), 200);
  });

  const page = (c: Context<AppEnv>, status: number, title: string, body: string) => {
    c.header("Cache-Control", "no-store");
    c.header("Referrer-Policy", "no-referrer");
    c.header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
    return c.html(actionPage(title, body), status as ContentfulStatusCode);
  };
  const verifyToken = (c: Context<AppEnv>) => {
    if (!links) throw new ApiError(404, "not_found", "email actions are not configured on this server");
    const verified = links.verify(c.req.param("token") ?? "");
    return verified.ok ? verified.claims : undefined;
  };

  // GET only shows what the link would do: mail scanners and link previews fetch links, and must not decide.
  app.get("/integrations/email/:token", async (c) => {
    const claims = verifyToken(c);
    if (!claims) return page(c, 400, "Invalid link", "<p>This link is not valid.</p>");
    const check = await checkEmailLink(deps, claims);
    if (check.status !== 200) return page(c, check.status, "Cannot act on this link", `<p>${escapeHtml(check.message)}</p>`);
    const d = check.decision!;
    const reason =
      claims.a === "reject"
        ? `<p><label for="reason">Reason (required)</label><br/><textarea id="reason" name="reason" rows="3" cols="50" maxlength="2000" required></textarea></p>`
        : "";
    return page(
      c,
      200,
      `${claims.a === "approve" ? "Approve" : "Reject"}: ${d.title}`,
      `<p>You are <strong>${escapeHtml(check.person!.name)}</strong>. Kind <code>${escapeHtml(d.kind)}</code>, priority ${d.priority}, payload SHA-256 <code>${d.payloadHash}</code>.</p>
<pre>${escapeHtml(JSON.stringify(d.payload, null, 2).slice(0, 4000))}</pre>
<form method="post">${reason}<button type="submit">Confirm: ${claims.a}</button></form>`,
    );
  });

  app.post("/integrations/email/:token", async (c) => {
    const claims = verifyToken(c);
    if (!claims) return page(c, 400, "Invalid link", "<p>This link is not valid.</p>");
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const reason = typeof form.reason === "string" && form.reason.trim() ? form.reason.trim().slice(0, 2000) : undefined;
    const result = await useEmailLink(deps, claims, reason);
    return page(c, result.status, result.status === 200 ? "Done" : "Cannot act on this link", `<p>${escapeHtml(result.message)}</p>`);
  });
  return app;
}
