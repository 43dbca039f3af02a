import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { keyView } from "../auth/keys-service";
import { requestMeta } from "../auth/middleware";
import { KeySchema } from "../auth/routes";
import type { AuthRuntime } from "../auth/runtime";
import { ROLES } from "../db/schema";
import type { AppEnv } from "../http/env";
import { errorResponses } from "../http/errors";
import { createRouter, defineRoute } from "../http/openapi";
import { PaginationQuery, pageSchema } from "../http/pagination";
import {
  assignKey,
  createOperator,
  disableOperator,
  getOperator,
  listOperators,
  OPERATOR_STATUSES,
  operatorView,
  updateOperator,
} from "./service";

const IdParam = z.object({ id: z.uuid().openapi({ param: { name: "id", in: "path" }, example: "01938f4e-7c1a-7b3e-9d2f-5a6b7c8d9e0f" }) });
const Email = z
  .email()
  .max(254)
  .transform((value) => value.toLowerCase());
/** Slack member ids: U… for users, W… for Enterprise Grid users. */
const SlackUserId = z.string().regex(/^[UW][A-Z0-9]{2,20}$/, "a Slack member id such as U024BE7LH");

export const OperatorSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    email: z.string().nullable(),
    slack_user_id: z.string().nullable(),
    role: z.enum(ROLES).describe("caps the permissions of the keys this person may hold"),
    status: z.enum(OPERATOR_STATUSES),
    created_by: z.uuid().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    disabled_at: z.string().nullable(),
  })
  .openapi("Operator");

export const CreateOperatorBody = z.strictObject({
  name: z.string().trim().min(1).max(128),
  role: z.enum(ROLES),
  email: Email.optional(),
  slack_user_id: SlackUserId.optional(),
});
export const UpdateOperatorBody = z
  .strictObject({
    name: z.string().trim().min(1).max(128).optional(),
    role: z.enum(ROLES).optional(),
    email: Email.nullable().optional().describe("null clears it"),
    slack_user_id: SlackUserId.nullable().optional().describe("null clears it"),
  })
  .refine((body) => Object.values(body).some((value) => value !== undefined), "give at least one field to change")
  .openapi({ minProperties: 1, example: { name: "Ada King", slack_user_id: null } });
export const ListOperatorsQuery = PaginationQuery.extend({
  role: z.enum(ROLES).optional(),
  status: z.enum(OPERATOR_STATUSES).optional(),
});
export const AssignKeyBody = z.strictObject({ key_id: z.uuid() });
export const DisabledOperatorSchema = OperatorSchema.extend({
  revoked_key_ids: z.array(z.uuid()).describe("the person's keys revoked with it"),
});

const json = <T extends z.ZodTypeAny>(schema: T) => ({ content: { "application/json": { schema } } });

const createOperatorRoute = defineRoute("keys:create", {
  operationId: "createOperator",
  method: "post",
  path: "/v1/operators",
  tags: ["people"],
  summary: "Record a person who can hold keys and approve",
  request: { body: { required: true, ...json(CreateOperatorBody) } },
  responses: { 201: { description: "Created", ...json(OperatorSchema) }, ...errorResponses(409) },
});

const listOperatorsRoute = defineRoute("keys:read", {
  operationId: "listOperators",
  method: "get",
  path: "/v1/operators",
  tags: ["people"],
  summary: "List people, newest first",
  request: { query: ListOperatorsQuery },
  responses: { 200: { description: "A page of people", ...json(pageSchema(OperatorSchema)) } },
});

const getOperatorRoute = defineRoute("keys:read", {
  operationId: "getOperator",
  method: "get",
  path: "/v1/operators/{id}",
  tags: ["people"],
  summary: "One person",
  request: { params: IdParam },
  responses: { 200: { description: "The person", ...json(OperatorSchema) } },
});

const updateOperatorRoute = defineRoute("keys:create", {
  operationId: "updateOperator",
  method: "patch",
  path: "/v1/operators/{id}",
  tags: ["people"],
  summary: "Change a person's name, role, email or Slack id (a role is lowered only when none of their keys outranks it)",
  request: { params: IdParam, body: { required: true, ...json(UpdateOperatorBody) } },
  responses: { 200: { description: "The person", ...json(OperatorSchema) }, ...errorResponses(409) },
});

const disableOperatorRoute = defineRoute("keys:revoke", {
  operationId: "disableOperator",
  method: "post",
  path: "/v1/operators/{id}/disable",
  tags: ["people"],
  summary: "Disable a person and revoke every key (and token) they hold, at once",
  request: { params: IdParam },
  responses: { 200: { description: "Disabled", ...json(DisabledOperatorSchema) }, ...errorResponses(409) },
});

const assignKeyRoute = defineRoute("keys:create", {
  operationId: "assignKeyToOperator",
  method: "post",
  path: "/v1/operators/{id}/keys",
  tags: ["people"],
  summary: "Give an existing active key to this person (its later approvals count for them)",
  request: { params: IdParam, body: { required: true, ...json(AssignKeyBody) } },
  responses: { 200: { description: "The key, now held by the person", ...json(KeySchema) }, ...errorResponses(409, 422) },
});

/** People: parse → service → shape. Managing them needs the key permissions, since people hold keys. */
export function peopleRoutes(auth: AuthRuntime) {
  const { deps } = auth;
  const meta = (c: Context<AppEnv>) => requestMeta(c, deps.config.TRUST_PROXY_HOPS);
  return createRouter()
    .openapi(createOperatorRoute, async (c) => {
      const body = c.req.valid("json");
      const row = await createOperator(
        auth.keyService,
        c.get("principal")!,
        { name: body.name, role: body.role, email: body.email, slackUserId: body.slack_user_id },
        meta(c),
      );
      return c.json(operatorView(row), 201);
    })
    .openapi(listOperatorsRoute, async (c) => c.json(await listOperators(deps.database.db, c.req.valid("query")), 200))
    .openapi(getOperatorRoute, async (c) => c.json(operatorView(await getOperator(deps.database.db, c.req.valid("param").id)), 200))
    .openapi(updateOperatorRoute, async (c) => {
      const body = c.req.valid("json");
      const row = await updateOperator(
        auth.keyService,
        c.get("principal")!,
        c.req.valid("param").id,
        { name: body.name, role: body.role, email: body.email, slackUserId: body.slack_user_id },
        meta(c),
      );
      return c.json(operatorView(row), 200);
    })
    .openapi(disableOperatorRoute, async (c) => {
      const { row, revokedKeyIds } = await disableOperator(auth.keyService, c.get("principal")!, c.req.valid("param").id, meta(c));
      return c.json({ ...operatorView(row), revoked_key_ids: revokedKeyIds }, 200);
    })
    .openapi(assignKeyRoute, async (c) => {
      const row = await assignKey(auth.keyService, c.get("principal")!, c.req.valid("param").id, c.req.valid("json").key_id, meta(c));
      return c.json(keyView(row, deps.clock.now()), 200);
    });
}
