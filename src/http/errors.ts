import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every error Arbiter answers has this body: a stable machine-readable `code` and a human message. */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "validation_failed" }),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .openapi("Error");
export type ErrorBody = z.infer<typeof ErrorBody>;

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    /** extra response headers, e.g. Retry-After or Allow */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

export function errorResponse(c: Context, error: ApiError): Response {
  for (const [name, value] of Object.entries(error.headers ?? {})) c.header(name, value);
  return c.json(errorBody(error.code, error.message, error.details), error.status);
}

export const badRequest = (code: string, message: string, details?: unknown) => new ApiError(400, code, message, details);
export const notFound = (message = "not found") => new ApiError(404, "not_found", message);
export const conflict = (code: string, message: string, details?: unknown) => new ApiError(409, code, message, details);

/** The one 400 for bad fields, from a schema or from a check the schema cannot express: `details` name each field. */
export const validationFailed = (details: { path: string; message: string; code: string }[]) =>
  badRequest("validation_failed", "request validation failed", details);

/** zod issues → `details` entries naming each failing field by its path, e.g. `json.events.3.type`. */
export function issueDetails(issues: readonly z.core.$ZodIssue[], target?: string) {
  return issues.map((issue) => ({
    path: [...(target ? [target] : []), ...issue.path.map(String)].join("."),
    message: issue.message,
    code: issue.code,
  }));
}

/** Documented error responses, merged into every route's OpenAPI entry. */
export function errorResponses(...statuses: ContentfulStatusCode[]) {
  const descriptions: Partial<Record<number, string>> = {
    400: "Invalid request (validation details name each field)",
    401: "Missing or invalid credentials",
    403: "Authenticated, but not permitted",
    404: "Not found (or not yours to see)",
    409: "Conflicts with the current state",
    413: "Body larger than the limit",
    415: "Body is not of a media type the operation accepts",
    422: "Semantically invalid",
    429: "Rate limited; see Retry-After",
    500: "Internal error; quote the request id when reporting it",
    503: "A dependency is unavailable or the request timed out; see Retry-After",
  };
  return Object.fromEntries(
    statuses.map((s) => [s, { description: descriptions[s] ?? "Error", content: { "application/json": { schema: ErrorBody } } }]),
  );
}
