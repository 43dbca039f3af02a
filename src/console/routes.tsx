import type { z } from "@hono/zod-openapi";
import { type Context, Hono } from "hono";
import { html } from "hono/html";
import { HTTPException } from "hono/http-exception";
import type { JSX } from "hono/jsx/jsx-runtime";
import { secureHeaders } from "hono/secure-headers";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { rateLimit } from "../auth/middleware";
import { type Permission, type Principal, requirePermission } from "../auth/rbac";
import type { AuthRuntime } from "../auth/runtime";
import { AuthFailure } from "../auth/verifier";
import { canonicalJson } from "../decisions/canonical-json";
import { latestEventId } from "../decisions/event-stream";
import { type DecisionView, presentDecision } from "../decisions/present";
import { eventStreamResponse, resumeFrom } from "../decisions/routes";
import { ApproveBody, DecisionId, ListQuery, QueueQuery, ReasonBody, RejectBody, StreamQuery } from "../decisions/schemas";
import { approveDecision, escalateDecision, getDecision, listDecisions, listQueue, rejectDecision } from "../decisions/service";
import type { AppDeps } from "../deps";
import type { AppEnv } from "../http/env";
import { ApiError, issueDetails, notFound, validationFailed } from "../http/errors";
import { isStorableText, parseCheckedJson } from "../http/input-guard";
import { CONSOLE_CSS, CONSOLE_CSS_FILE, CONSOLE_JS, CONSOLE_JS_FILE } from "./assets";
import { decisionHistory, keyNames, withQueueDetails } from "./queries";
import { consoleSession, csrfCheck, csrfToken, sameOrigin, signIn, signOut } from "./session";
import {
  DecisionPage,
  ErrorPage,
  HISTORY_FILTERS,
  type HistoryFilters,
  HistoryPage,
  LoginPage,
  type Notice,
  QueuePage,
  type Verb,
  type Viewer,
} from "./views";

/**
 * The operator console: server-rendered pages under /console for people who decide. Plain Hono
 * routes (not part of the API's OpenAPI document); every verdict goes through the same service
 * functions as the API, so the rules (quorum, escalation, races) are the API's.
 */
const CSP = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'"],
  connectSrc: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  baseUri: ["'none'"],
};

const TITLES: Partial<Record<number, string>> = {
  400: "Bad request",
  401: "Please sign in",
  403: "Not allowed",
  404: "Not found",
  409: "Already decided",
  413: "Too large",
  422: "Not possible",
  429: "Too many requests",
};

const VERB_PERMISSIONS: Record<Verb, Permission> = {
  approve: "decisions:resolve",
  reject: "decisions:resolve",
  escalate: "decisions:escalate",
};

const DONE: Record<Verb, string> = {
  approve: "You approved this decision.",
  reject: "You rejected this decision.",
  escalate: "You escalated this decision.",
};

/** What a verdict did, said after the redirect; an approval short of its quorum says how far it got. */
const doneText = (verb: Verb, decision: DecisionView) =>
  verb === "approve" && decision.status === "pending"
    ? `Your approval is recorded: ${decision.approvals.length} of ${decision.required_approvals}.`
    : DONE[verb];

const render = (c: Context, page: JSX.Element, status: ContentfulStatusCode = 200) => {
  c.header("Cache-Control", "no-store");
  return c.html(html`<!doctype html>${page}`, status);
};

/** The assets' names carry their content hash, so a browser may keep them for good. */
const asset = (body: string, type: string) => () =>
  new Response(body, { headers: { "Content-Type": `${type}; charset=utf-8`, "Cache-Control": "public, max-age=31536000, immutable" } });

/** The form's fields as strings; anything else (files, a body that is not a form, unstorable text) is a 400. */
async function formFields(c: Context, names: readonly string[]): Promise<Record<string, string | undefined>> {
  const form = await c.req.formData().catch(() => {
    throw new ApiError(400, "malformed_form", "send the form as application/x-www-form-urlencoded or multipart/form-data");
  });
  const fields: Record<string, string | undefined> = {};
  for (const name of names) {
    const value = form.get(name);
    if (value !== null && typeof value !== "string")
      throw validationFailed([{ path: `form.${name}`, message: "must be text", code: "invalid_type" }]);
    if (value !== null && !isStorableText(value)) {
      throw validationFailed([{ path: `form.${name}`, message: "contains characters that cannot be stored", code: "invalid_string" }]);
    }
    fields[name] = value?.trim() || undefined;
  }
  return fields;
}

/** A form's values through the API's own schema for the same action: the console accepts what the API accepts. */
function formInput<T>(schema: z.ZodType<T>, input: unknown): T {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw validationFailed(issueDetails(parsed.error.issues, "form"));
  return parsed.data;
}

/** The history form's filters → the API's list query: an empty field is no filter, a UTC `datetime-local` becomes an instant. */
function historyQuery(query: Record<string, string>): { filters: HistoryFilters; list: Record<string, string> } {
  const filters: HistoryFilters = {};
  const list: Record<string, string> = {};
  const instant = (value: string) => (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(value) ? `${value}:00Z` : value);
  for (const [name, value] of Object.entries(query)) {
    if (!value) continue;
    if ((HISTORY_FILTERS as readonly string[]).includes(name)) filters[name as keyof HistoryFilters] = value;
    if (name === "from") list.created_after = instant(value);
    else if (name === "to") list.created_before = instant(value);
    else list[name] = value;
  }
  return { filters, list };
}

const firstIssue = (error: ApiError) => (error.details as { message: string }[])[0]?.message ?? error.message;

export function consoleRoutes(deps: AppDeps, auth: AuthRuntime) {
  /** The signed-in viewer of a page, when there is one (error pages are also shown to visitors). */
  const viewerOf = (c: Context<AppEnv>): Viewer | undefined => {
    const principal = c.get("principal");
    const csrf = csrfToken(c);
    return principal && csrf ? { principal, csrf } : undefined;
  };
  const signedInViewer = (c: Context<AppEnv>): Viewer => {
    const viewer = viewerOf(c);
    if (!viewer) throw new ApiError(401, "unauthenticated", "your console session has ended; sign in again");
    return viewer;
  };
  const principalOf = (c: Context<AppEnv>): Principal => signedInViewer(c).principal;

  const app = new Hono<AppEnv>().basePath("/console");
  // Adds the pages' CSP; the app-wide secure headers (HSTS and the rest) are set around it as on every response.
  app.use(secureHeaders({ contentSecurityPolicy: CSP }));
  app.get(`/assets/${CONSOLE_JS_FILE}`, asset(CONSOLE_JS, "text/javascript"));
  app.get(`/assets/${CONSOLE_CSS_FILE}`, asset(CONSOLE_CSS, "text/css"));
  app.use(sameOrigin());
  app.use(consoleSession(auth));
  app.use(csrfCheck());
  app.use(rateLimit(auth.guard));
  // Pages send a visitor without a session to the sign-in form; forms and the stream answer 401.
  app.use(async (c, next) => {
    if (!c.get("principal") && c.req.method === "GET" && c.req.path !== "/console/login" && c.req.path !== "/console/stream") {
      return c.redirect("/console/login", 303);
    }
    await next();
  });

  app.get("/login", (c) => (c.get("principal") ? c.redirect("/console", 303) : render(c, <LoginPage />)));

  app.post("/login", async (c) => {
    const { api_key: key } = await formFields(c, ["api_key"]);
    if (!key) return render(c, <LoginPage notice={{ kind: "error", text: "Enter an API key." }} />, 400);
    try {
      await signIn(auth, c, key);
    } catch (error) {
      if (!(error instanceof ApiError) || ![401, 403, 429].includes(error.status)) throw error;
      const text = error instanceof AuthFailure ? `That key was not accepted: ${error.message}.` : error.message;
      return render(c, <LoginPage notice={{ kind: "error", text }} />, error.status);
    }
    return c.redirect("/console", 303);
  });

  app.post("/logout", async (c) => {
    await signOut(auth, c, principalOf(c));
    return c.redirect("/console/login", 303);
  });

  const canRead = requirePermission("decisions:read");
  app.get("/", canRead, async (c) => {
    const query = QueueQuery.safeParse(c.req.query());
    if (!query.success) throw validationFailed(issueDetails(query.error.issues, "query"));
    const viewer = signedInViewer(c);
    // Read before the queue: the page's stream starts here, so no change after the read is missed.
    const streamAfter = await latestEventId(deps);
    const queue = await listQueue(deps, viewer.principal, query.data);
    const data = await withQueueDetails(deps.database.db, queue.data);
    return render(
      c,
      <QueuePage
        viewer={viewer}
        queue={{ data, next_cursor: queue.next_cursor }}
        now={deps.clock.now()}
        streamAfter={streamAfter}
        limit={query.data.limit}
        cursor={query.data.cursor}
      />,
    );
  });

  app.get("/history", canRead, async (c) => {
    const { filters, list } = historyQuery(c.req.query());
    const query = ListQuery.safeParse(list);
    if (!query.success) throw validationFailed(issueDetails(query.error.issues, "query"));
    const viewer = signedInViewer(c);
    const page = await listDecisions(deps, viewer.principal, query.data, { resolvedOnly: true });
    const names = await keyNames(
      deps.database.db,
      page.data.flatMap((d) => [d.requester_key_id, ...(d.resolved_by ? [d.resolved_by] : [])]),
    );
    return render(
      c,
      <HistoryPage viewer={viewer} page={page} names={names} filters={filters} limit={query.data.limit} cursor={query.data.cursor} />,
    );
  });

  app.get("/stream", canRead, async (c) => {
    const principal = principalOf(c);
    const query = StreamQuery.safeParse(c.req.query());
    if (!query.success) throw validationFailed(issueDetails(query.error.issues, "query"));
    // A page passes the last event before it was rendered; a reconnect's Last-Event-ID takes precedence.
    const after = resumeFrom(c, query.data.last_event_id) ?? (await latestEventId(deps));
    // Ended now and then, so a signed-out, revoked or expired session stops receiving soon after.
    return eventStreamResponse(c, deps, principal, after, { endAfterMs: deps.config.CONSOLE_STREAM_RECHECK_MS });
  });

  const decisionPage = async (
    c: Context<AppEnv>,
    id: string,
    notice?: (decision: DecisionView) => Notice,
    status: ContentfulStatusCode = 200,
  ) => {
    const viewer = signedInViewer(c);
    const streamAfter = await latestEventId(deps);
    const decision = presentDecision(await getDecision(deps, viewer.principal, id, { fresh: true }));
    const history = await decisionHistory(deps.database.db, id);
    return render(
      c,
      <DecisionPage viewer={viewer} streamAfter={streamAfter} decision={decision} history={history} notice={notice?.(decision)} />,
      status,
    );
  };

  const decisionId = (c: Context<AppEnv>): string => {
    const parsed = DecisionId.safeParse({ id: c.req.param("id") });
    if (!parsed.success) throw notFound("decision not found");
    return parsed.data.id;
  };

  app.get("/decisions/:id", canRead, async (c) => {
    const id = decisionId(c);
    const done = c.req.query("done");
    const verb = done && Object.hasOwn(DONE, done) ? (done as Verb) : undefined;
    return decisionPage(c, id, verb && ((decision) => ({ kind: "success", text: doneText(verb, decision) })));
  });

  /** The payload field of the approve form: an edit only when it differs from the request (the form shows the request). */
  const editedPayload = async (principal: Principal, id: string, text: string): Promise<unknown> => {
    const value = parseCheckedJson(text, "the edited payload", "form.payload");
    const { payload } = await getDecision(deps, principal, id);
    return canonicalJson(value) === canonicalJson(payload) ? undefined : value;
  };

  const verdicts: Record<
    Verb,
    (principal: Principal, id: string, reason: string | undefined, payload: string | undefined) => Promise<unknown>
  > = {
    approve: async (principal, id, reason, payload) => {
      const input = formInput(ApproveBody, { reason });
      return approveDecision(
        deps,
        principal,
        id,
        payload === undefined ? input : { ...input, payload: await editedPayload(principal, id, payload) },
      );
    },
    reject: (principal, id, reason) => {
      if (!reason) throw validationFailed([{ path: "form.reason", message: "A rejection needs a reason", code: "too_small" }]);
      return rejectDecision(deps, principal, id, formInput(RejectBody, { reason }).reason);
    },
    escalate: (principal, id, reason) => escalateDecision(deps, principal, id, formInput(ReasonBody, { reason }).reason),
  };

  for (const [verb, permission] of Object.entries(VERB_PERMISSIONS) as [Verb, Permission][]) {
    app.post(`/decisions/:id/${verb}`, requirePermission(permission), async (c) => {
      const id = decisionId(c);
      const { reason, payload } = await formFields(c, ["reason", "payload"]);
      try {
        await verdicts[verb](principalOf(c), id, reason, payload);
      } catch (error) {
        // A refusal (already decided, escalated to an admin, a missing reason) is shown on the decision's page.
        if (!(error instanceof ApiError) || error.status === 404) throw error;
        const text = `${error.code === "validation_failed" ? firstIssue(error) : error.message}.`;
        return decisionPage(c, id, () => ({ kind: "error", text }), error.status);
      }
      return c.redirect(`/console/decisions/${id}?done=${verb}`, 303);
    });
  }

  app.all("*", (c) => {
    throw notFound(`no console page at ${c.req.path}`);
  });

  app.onError((error, c) => {
    const viewer = viewerOf(c);
    if (error instanceof ApiError || (error instanceof HTTPException && error.status < 500)) {
      const headers = error instanceof ApiError ? error.headers : undefined;
      for (const [name, value] of Object.entries(headers ?? {})) c.header(name, value);
      const status = error.status as ContentfulStatusCode;
      return render(
        c,
        <ErrorPage viewer={viewer} title={TITLES[status] ?? "Request refused"} message={error.message || "The request was refused."} />,
        status,
      );
    }
    c.get("logger").error("unhandled error", { request_id: c.get("requestId"), error });
    const message = `Something went wrong on our side. Quote request id ${c.get("requestId")} when reporting it.`;
    return render(c, <ErrorPage viewer={viewer} title="Internal error" message={message} />, 500);
  });

  return app;
}
