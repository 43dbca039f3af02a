import type { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Principal } from "../auth/rbac";
import type { AppEnv } from "../http/env";
import { errorResponses } from "../http/errors";
import { createRouter, defineRoute } from "../http/openapi";
import {
  CreatePolicyBody,
  PolicyId,
  PolicyList,
  PolicySchema,
  PolicyVersionParams,
  PreviewBody,
  ReplayBody,
  ReplayResult,
  UpdatePolicyBody,
} from "./schemas";
import {
  createPolicy,
  deletePolicy,
  disablePolicy,
  getPolicy,
  getVersion,
  listPolicies,
  listVersions,
  type PolicyDeps,
  presentPolicy,
  previewRule,
  replayPolicy,
  updatePolicy,
} from "./service";

const tags = ["policies"];
const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { required: true, content: { "application/json": { schema } } } });
const PERMISSION = "policies:manage";

const create = defineRoute(PERMISSION, {
  operationId: "createPolicy",
  method: "post",
  path: "/v1/policies",
  tags,
  summary: "Save a rule (version 1); the expression is parsed and type-checked first",
  request: body(CreatePolicyBody),
  responses: { 201: json(PolicySchema, "Created"), ...errorResponses(409, 422) },
});

const list = defineRoute(PERMISSION, {
  operationId: "listPolicies",
  method: "get",
  path: "/v1/policies",
  tags,
  summary: "Every policy (current versions), in evaluation order",
  responses: { 200: json(PolicyList, "The policies") },
});

const preview = defineRoute(PERMISSION, {
  operationId: "previewPolicy",
  method: "post",
  path: "/v1/policies/preview",
  tags,
  summary: "Evaluate an unsaved rule over past decisions: what it would have approved, denied or required",
  request: body(PreviewBody),
  responses: { 200: json(ReplayResult, "The figures") },
});

const read = defineRoute(PERMISSION, {
  operationId: "getPolicy",
  method: "get",
  path: "/v1/policies/{id}",
  tags,
  summary: "A policy's current version",
  request: { params: PolicyId },
  responses: { 200: json(PolicySchema, "The policy") },
});

const update = defineRoute(PERMISSION, {
  operationId: "updatePolicy",
  method: "patch",
  path: "/v1/policies/{id}",
  tags,
  summary: "Change a policy: saves a new version (old versions are kept, immutable)",
  request: { params: PolicyId, ...body(UpdatePolicyBody) },
  responses: { 200: json(PolicySchema, "The new version"), ...errorResponses(409, 422) },
});

const remove = defineRoute(PERMISSION, {
  operationId: "deletePolicy",
  method: "delete",
  path: "/v1/policies/{id}",
  tags,
  summary: "Delete a policy: never evaluated again; its versions stay readable",
  request: { params: PolicyId },
  responses: { 204: { description: "Deleted" } },
});

const disable = defineRoute(PERMISSION, {
  operationId: "disablePolicy",
  method: "post",
  path: "/v1/policies/{id}/disable",
  tags,
  summary: "Stop evaluating a policy (a new version in state disabled)",
  request: { params: PolicyId },
  responses: { 200: json(PolicySchema, "The new version"), ...errorResponses(409) },
});

const versions = defineRoute(PERMISSION, {
  operationId: "listPolicyVersions",
  method: "get",
  path: "/v1/policies/{id}/versions",
  tags,
  summary: "Every version of a policy, newest first",
  request: { params: PolicyId },
  responses: { 200: json(PolicyList, "The versions") },
});

const version = defineRoute(PERMISSION, {
  operationId: "getPolicyVersion",
  method: "get",
  path: "/v1/policies/{id}/versions/{version}",
  tags,
  summary: "One version of a policy, as it was saved",
  request: { params: PolicyVersionParams },
  responses: { 200: json(PolicySchema, "The version") },
});

const replay = defineRoute(PERMISSION, {
  operationId: "replayPolicy",
  method: "post",
  path: "/v1/policies/{id}/replay",
  tags,
  summary: "Evaluate a saved rule over past decisions in a time range",
  request: { params: PolicyId, ...body(ReplayBody) },
  responses: { 200: json(ReplayResult, "The figures"), ...errorResponses(422) },
});

const principalOf = (c: Context<AppEnv>): Principal => c.get("principal")!;

export function policyRoutes(deps: PolicyDeps) {
  return createRouter()
    .openapi(create, async (c) => {
      const row = await createPolicy(deps, principalOf(c), c.req.valid("json"));
      c.header("Location", `/v1/policies/${row.id}`);
      return c.json(presentPolicy(row), 201);
    })
    .openapi(list, async (c) => c.json(await listPolicies(deps), 200))
    .openapi(preview, async (c) => c.json(await previewRule(deps, principalOf(c), c.req.valid("json")), 200))
    .openapi(read, async (c) => c.json(presentPolicy(await getPolicy(deps, c.req.valid("param").id)), 200))
    .openapi(update, async (c) =>
      c.json(presentPolicy(await updatePolicy(deps, principalOf(c), c.req.valid("param").id, c.req.valid("json"))), 200),
    )
    .openapi(remove, async (c) => {
      await deletePolicy(deps, principalOf(c), c.req.valid("param").id);
      return c.body(null, 204);
    })
    .openapi(disable, async (c) => c.json(presentPolicy(await disablePolicy(deps, principalOf(c), c.req.valid("param").id)), 200))
    .openapi(versions, async (c) => c.json(await listVersions(deps, c.req.valid("param").id), 200))
    .openapi(version, async (c) => {
      const { id, version: number } = c.req.valid("param");
      return c.json(presentPolicy(await getVersion(deps, id, number)), 200);
    })
    .openapi(replay, async (c) => c.json(await replayPolicy(deps, c.req.valid("param").id, c.req.valid("json")), 200));
}
