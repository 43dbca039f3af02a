import type { Child, FC } from "hono/jsx";
import type { Principal } from "../auth/rbac";
import type { DecisionView } from "../decisions/present";
import type { listDecisions, listQueue } from "../decisions/service";
import { DEFAULT_LIMIT } from "../http/pagination";
import { CONSOLE_CSS_FILE, CONSOLE_JS_FILE } from "./assets";
import type { HistoryEntry } from "./queries";
import { CSRF_FIELD } from "./session";

/** Server-rendered pages of the operator console: plain HTML forms that work without script. */

export type QueueItem = Awaited<ReturnType<typeof listQueue>>["data"][number] & { approvals: number; requester_name: string | null };
export type HistoryPageData = Awaited<ReturnType<typeof listDecisions>>;
export type Verb = "approve" | "reject" | "escalate";

/** Who is looking, and the CSRF token their session's forms carry. */
export interface Viewer {
  principal: Principal;
  csrf: string;
}

/** The history page's filters as the form sends them (text, empty when unset). */
export const HISTORY_FILTERS = ["status", "kind", "requester", "from", "to"] as const;
export type HistoryFilters = Partial<Record<(typeof HISTORY_FILTERS)[number], string>>;
export const RESOLVED_STATUSES = ["approved", "rejected", "expired", "cancelled"] as const;

/** A message for the page: `role="status"` for news, `role="alert"` for a refusal. */
export interface Notice {
  kind: "success" | "error";
  text: string;
}

const Time: FC<{ at: string }> = ({ at }) => <time datetime={at}>{at.replace("T", " ").replace(/\.\d+Z$/, " UTC")}</time>;

/** How long until an instant, in the largest unit or two that matter ("in 2 h 5 min"). */
export function timeLeft(at: string, now: Date): string {
  const seconds = Math.floor((Date.parse(at) - now.getTime()) / 1000);
  if (seconds <= 0) return "due now";
  const [d, h, m] = [Math.floor(seconds / 86_400), Math.floor((seconds % 86_400) / 3_600), Math.floor((seconds % 3_600) / 60)];
  if (d > 0) return `in ${d} d${h > 0 ? ` ${h} h` : ""}`;
  if (h > 0) return `in ${h} h${m > 0 ? ` ${m} min` : ""}`;
  return m > 0 ? `in ${m} min` : `in ${seconds} s`;
}

const CsrfField: FC<{ viewer: Viewer }> = ({ viewer }) => <input type="hidden" name={CSRF_FIELD} value={viewer.csrf} />;

const NoticeBanner: FC<{ notice?: Notice | undefined }> = ({ notice }) =>
  notice ? (
    <p class={`notice notice-${notice.kind}`} role={notice.kind === "error" ? "alert" : "status"}>
      {notice.text}
    </p>
  ) : null;

const Layout: FC<{ title: string; page: string; viewer?: Viewer | undefined; data?: Record<string, string>; children?: Child }> = (
  props,
) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{`${props.title} · Arbiter console`}</title>
      <link rel="stylesheet" href={`/console/assets/${CONSOLE_CSS_FILE}`} />
      <script src={`/console/assets/${CONSOLE_JS_FILE}`} defer />
    </head>
    <body data-page={props.page} {...Object.fromEntries(Object.entries(props.data ?? {}).map(([k, v]) => [`data-${k}`, v]))}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <p class="brand">
          <a href="/console">Arbiter console</a>
        </p>
        {props.viewer ? (
          <>
            <nav aria-label="Console" class="sections">
              <a href="/console" aria-current={props.page === "queue" ? "page" : undefined}>
                Pending
              </a>
              <a href="/console/history" aria-current={props.page === "history" ? "page" : undefined}>
                History
              </a>
            </nav>
            <form method="post" action="/console/logout" class="signout">
              <CsrfField viewer={props.viewer} />
              <span>
                Signed in as <strong>{props.viewer.principal.keyName}</strong> ({props.viewer.principal.role})
              </span>{" "}
              <button type="submit">Sign out</button>
            </form>
          </>
        ) : null}
      </header>
      <main id="main">{props.children}</main>
      <div id="live" class="visually-hidden" role="status" aria-live="polite" />
    </body>
  </html>
);

export const LoginPage: FC<{ notice?: Notice | undefined }> = ({ notice }) => (
  <Layout title="Sign in" page="login">
    <h1>Sign in</h1>
    <NoticeBanner notice={notice} />
    <form method="post" action="/console/login" class="card">
      <label for="api_key">API key</label>
      <input id="api_key" name="api_key" type="password" autocomplete="off" required maxlength={200} aria-describedby="api_key_help" />
      <p id="api_key_help" class="help">
        An admin, operator or readonly key. The key is exchanged for a short session; it is not stored in the browser.
      </p>
      <button type="submit">Sign in</button>
    </form>
  </Layout>
);

export const QueuePage: FC<{
  viewer: Viewer;
  queue: { data: QueueItem[]; next_cursor: string | null };
  now: Date;
  /** the last decision event before the page was read: its live updates start after it */
  streamAfter: number;
  limit: number;
  cursor?: string | undefined;
}> = ({ viewer, queue, now, streamAfter, limit, cursor }) => (
  <Layout title="Pending decisions" page="queue" viewer={viewer} data={{ "stream-after": String(streamAfter) }}>
    <h1>Pending decisions</h1>
    <p class="help">Highest priority first, then oldest. The list updates as decisions arrive and are resolved.</p>
    <section id="queue" aria-labelledby="queue-caption">
      {queue.data.length === 0 ? (
        <p id="queue-caption" class="empty">
          No decisions are waiting.
        </p>
      ) : (
        <table>
          <caption id="queue-caption">{`${queue.data.length}${queue.next_cursor ? "+" : ""} pending`}</caption>
          <thead>
            <tr>
              <th scope="col">Title</th>
              <th scope="col">Kind</th>
              <th scope="col">Priority</th>
              <th scope="col">Requester</th>
              <th scope="col">Approvals</th>
              <th scope="col">Escalation</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
            </tr>
          </thead>
          <tbody>
            {queue.data.map((item) => (
              <tr data-decision-id={item.id}>
                <td data-label="Title">
                  <a href={`/console/decisions/${item.id}`}>{item.title}</a>
                </td>
                <td data-label="Kind">
                  <code>{item.kind}</code>
                </td>
                <td data-label="Priority">
                  <span class={`priority priority-${item.priority}`}>{item.priority}</span>
                </td>
                <td data-label="Requester">
                  <Requester id={item.requester_key_id} name={item.requester_name} />
                </td>
                <td data-label="Approvals" class="approvals">{`${item.approvals} of ${item.required_approvals}`}</td>
                <td data-label="Escalation">{item.escalation_level === 0 ? "none" : `level ${item.escalation_level}`}</td>
                <td data-label="Created">
                  <Time at={item.created_at} />
                </td>
                <td data-label="Expires">
                  <time datetime={item.expires_at} title={item.expires_at}>
                    {timeLeft(item.expires_at, now)}
                  </time>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pages base="/console" query={{}} limit={limit} cursor={cursor} next={queue.next_cursor} />
    </section>
  </Layout>
);

/** A key shown by name (its id in the tooltip), or by id when the name is unknown. */
const Requester: FC<{ id: string; name: string | null | undefined }> = ({ id, name }) =>
  name ? <span title={id}>{name}</span> : <code>{id}</code>;

/** First and next page links: the filters and a non-default page size are kept. */
const Pages: FC<{ base: string; query: Record<string, string>; limit: number; cursor?: string | undefined; next: string | null }> = (
  props,
) => (
  <nav aria-label="Pages" class="pages">
    {props.cursor ? <a href={pageLink(props.base, props.query, props.limit)}>First page</a> : null}
    {props.next ? <a href={pageLink(props.base, props.query, props.limit, props.next)}>Next page</a> : null}
  </nav>
);

const KeyName: FC<{ id: string; name: string | null }> = ({ id, name }) => (
  <>
    {" by "}
    {name ? <strong>{name}</strong> : null} <code>{id}</code>
  </>
);

/** A listing page's address: its filters, a non-default page size, the cursor. */
const pageLink = (base: string, filters: Record<string, string>, limit: number, cursor?: string) => {
  const query = new URLSearchParams({
    ...filters,
    ...(limit === DEFAULT_LIMIT ? {} : { limit: String(limit) }),
    ...(cursor ? { cursor } : {}),
  });
  return query.size === 0 ? base : `${base}?${query}`;
};

const Json: FC<{ value: unknown }> = ({ value }) => (
  <pre tabindex={0}>
    <code>{JSON.stringify(value, null, 2)}</code>
  </pre>
);

const SHORTCUTS: Record<Verb, string> = { approve: "a", reject: "r", escalate: "e" };

const ActionForm: FC<{
  viewer: Viewer;
  id: string;
  verb: Verb;
  label: string;
  reasonRequired: boolean;
  help: string;
  children?: Child;
}> = (props) => (
  <form method="post" action={`/console/decisions/${props.id}/${props.verb}`} class={`card action action-${props.verb}`}>
    <CsrfField viewer={props.viewer} />
    <h3>{props.label}</h3>
    <label for={`${props.verb}-reason`}>{props.reasonRequired ? "Reason (required)" : "Reason (optional)"}</label>
    <textarea
      id={`${props.verb}-reason`}
      name="reason"
      rows={2}
      maxlength={2000}
      required={props.reasonRequired}
      aria-describedby={`${props.verb}-help`}
    />
    <p id={`${props.verb}-help`} class="help">
      {props.help}
    </p>
    {props.children}
    <button type="submit" class={`button-${props.verb}`} aria-keyshortcuts={SHORTCUTS[props.verb]}>
      {props.label}
    </button>
  </form>
);

export const DecisionPage: FC<{
  viewer: Viewer;
  streamAfter: number;
  decision: DecisionView;
  history: HistoryEntry[];
  notice?: Notice | undefined;
}> = ({ viewer, streamAfter, decision: d, history, notice }) => {
  const { principal } = viewer;
  const pending = d.status === "pending";
  const requester = history.find((entry) => entry.type === "created")?.actorName;
  const canResolve = pending && principal.permissions.has("decisions:resolve");
  // The requester may reject or escalate its own decision, never approve it with any of their keys (the API refuses it too).
  const canApprove = canResolve && principal.keyId !== d.requester_key_id && principal.personId !== d.requester_person_id;
  const canEscalate = pending && principal.permissions.has("decisions:escalate") && d.escalation_level < 3;
  const verbs = ([canApprove && "approve", canResolve && "reject", canEscalate && "escalate"] as const).filter((v) => v !== false);
  return (
    <Layout
      title={d.title}
      page="decision"
      viewer={viewer}
      data={{ "decision-id": d.id, status: d.status, "stream-after": String(streamAfter) }}
    >
      <p>
        <a href="/console">← Pending decisions</a>
      </p>
      <h1>{d.title}</h1>
      <NoticeBanner notice={notice} />
      <p id="stale" class="notice notice-info" role="status" hidden>
        This decision changed since the page loaded. <a href={`/console/decisions/${d.id}`}>Reload it</a>.
      </p>
      <dl class="facts">
        <dt>Status</dt>
        <dd>
          <span class={`status status-${d.status}`}>{d.status}</span>
        </dd>
        <dt>Kind</dt>
        <dd>
          <code>{d.kind}</code>
        </dd>
        <dt>Priority</dt>
        <dd>{d.priority}</dd>
        <dt>Approvals</dt>
        <dd>{`${d.approvals.length} of ${d.required_approvals}`}</dd>
        <dt>Escalation level</dt>
        <dd>{d.escalation_level}</dd>
        <dt>Requested by</dt>
        <dd>
          {requester ? <strong>{requester}</strong> : null} <code>{d.requester_key_id}</code>
        </dd>
        <dt>Created</dt>
        <dd>
          <Time at={d.created_at} />
        </dd>
        <dt>{pending ? "Expires" : "Resolved"}</dt>
        <dd>{pending ? <Time at={d.expires_at} /> : d.resolved_at ? <Time at={d.resolved_at} /> : "—"}</dd>
        <dt>On timeout</dt>
        <dd>{d.on_timeout}</dd>
        {d.decided_by ? (
          <>
            <dt>Decided by</dt>
            <dd>
              {d.decided_by === "policy" ? (
                <>
                  policy <code>{d.policy_id}</code> version {d.policy_version}
                </>
              ) : (
                d.decided_by
              )}
            </dd>
          </>
        ) : null}
        {d.resolution_reason ? (
          <>
            <dt>Reason</dt>
            <dd>{d.resolution_reason}</dd>
          </>
        ) : null}
        <dt>Payload SHA-256</dt>
        <dd>
          <code class="hash">{d.payload_hash}</code>
        </dd>
      </dl>
      <h2>Payload</h2>
      <Json value={d.payload} />
      {d.approved_payload !== null ? (
        <>
          <h2>Approved payload (edited)</h2>
          <Json value={d.approved_payload} />
        </>
      ) : null}
      <h2>Context</h2>
      <Json value={d.context} />
      {canResolve || canEscalate ? (
        <section aria-labelledby="actions-heading" class="actions">
          <h2 id="actions-heading">Your verdict</h2>
          <p class="help shortcuts" id="shortcuts">
            {"Keyboard: "}
            {verbs.map((verb, index) => (
              <>
                {index > 0 ? ", " : null}
                <kbd>{SHORTCUTS[verb]}</kbd> {verb}
              </>
            ))}
            {" (outside a text field; then Enter)."}
          </p>
          {canResolve && !canApprove ? <p class="help">You requested this decision: someone else must approve it.</p> : null}
          {canApprove ? (
            <ActionForm
              viewer={viewer}
              id={d.id}
              verb="approve"
              label="Approve"
              reasonRequired={false}
              help={d.required_approvals > 1 ? "Counts as one approval towards the quorum." : "Approves the payload as shown."}
            >
              {d.required_approvals === 1 ? (
                <details>
                  <summary>Edit the payload before approving</summary>
                  <label for="approve-payload">Payload to approve (JSON)</label>
                  <textarea
                    id="approve-payload"
                    name="payload"
                    rows={8}
                    spellcheck={false}
                    aria-describedby="approve-payload-help approve-payload-error"
                  >
                    {JSON.stringify(d.payload, null, 2)}
                  </textarea>
                  <p id="approve-payload-help" class="help">
                    Left as it is, the requested payload is approved. Changed, the edit is approved and its hash recorded.
                  </p>
                  <p id="approve-payload-error" class="field-error" aria-live="assertive" />
                </details>
              ) : null}
            </ActionForm>
          ) : null}
          {canResolve ? (
            <ActionForm
              viewer={viewer}
              id={d.id}
              verb="reject"
              label="Reject"
              reasonRequired={true}
              help="One rejection rejects the decision."
            />
          ) : null}
          {canEscalate ? (
            <ActionForm
              viewer={viewer}
              id={d.id}
              verb="escalate"
              label="Escalate"
              reasonRequired={false}
              help="Raises the escalation level; an admin must then resolve it."
            />
          ) : null}
        </section>
      ) : null}
      <h2>History</h2>
      <ol class="history">
        {history.map((entry) => (
          <li>
            <Time at={entry.at} /> <strong>{entry.type.replace("_", " ")}</strong>
            {entry.actorKeyId ? <KeyName id={entry.actorKeyId} name={entry.actorName} /> : null}
            {entry.reason ? `: ${entry.reason}` : null}
          </li>
        ))}
      </ol>
    </Layout>
  );
};

export const HistoryPage: FC<{
  viewer: Viewer;
  page: HistoryPageData;
  names: Map<string, string>;
  filters: HistoryFilters;
  limit: number;
  cursor?: string | undefined;
}> = ({ viewer, page, names, filters, limit, cursor }) => {
  const query = Object.fromEntries(Object.entries(filters).filter(([, v]) => v)) as Record<string, string>;
  return (
    <Layout title="History" page="history" viewer={viewer}>
      <h1>History</h1>
      <p class="help">Resolved decisions, newest first. Times are UTC.</p>
      <form method="get" action="/console/history" class="card filters" aria-label="Filters">
        <div>
          <label for="f-status">Status</label>
          <select id="f-status" name="status">
            <option value="">any resolved</option>
            {RESOLVED_STATUSES.map((status) => (
              <option value={status} selected={filters.status === status}>
                {status}
              </option>
            ))}
          </select>
        </div>
        <div>
          <label for="f-kind">Kind</label>
          <input id="f-kind" name="kind" value={filters.kind ?? ""} maxlength={100} />
        </div>
        <div>
          <label for="f-requester">Requester key id</label>
          <input id="f-requester" name="requester" value={filters.requester ?? ""} maxlength={36} />
        </div>
        <div>
          <label for="f-from">Created from (UTC)</label>
          <input id="f-from" name="from" type="datetime-local" value={filters.from ?? ""} />
        </div>
        <div>
          <label for="f-to">Created before (UTC)</label>
          <input id="f-to" name="to" type="datetime-local" value={filters.to ?? ""} />
        </div>
        <button type="submit">Filter</button>
      </form>
      <section id="history" aria-labelledby="history-caption">
        {page.data.length === 0 ? (
          <p id="history-caption" class="empty">
            No resolved decisions on this page.
          </p>
        ) : (
          <table>
            <caption id="history-caption">Resolved decisions</caption>
            <thead>
              <tr>
                <th scope="col">Title</th>
                <th scope="col">Kind</th>
                <th scope="col">Status</th>
                <th scope="col">Requester</th>
                <th scope="col">Resolved by</th>
                <th scope="col">Created</th>
                <th scope="col">Resolved</th>
              </tr>
            </thead>
            <tbody>
              {page.data.map((d) => (
                <tr data-decision-id={d.id}>
                  <td data-label="Title">
                    <a href={`/console/decisions/${d.id}`}>{d.title}</a>
                  </td>
                  <td data-label="Kind">
                    <code>{d.kind}</code>
                  </td>
                  <td data-label="Status">
                    <span class={`status status-${d.status}`}>{d.status}</span>
                  </td>
                  <td data-label="Requester">
                    <Requester id={d.requester_key_id} name={names.get(d.requester_key_id)} />
                  </td>
                  <td data-label="Resolved by">{d.resolved_by ? <Requester id={d.resolved_by} name={names.get(d.resolved_by)} /> : "—"}</td>
                  <td data-label="Created">
                    <Time at={d.created_at} />
                  </td>
                  <td data-label="Resolved">{d.resolved_at ? <Time at={d.resolved_at} /> : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        <Pages base="/console/history" query={query} limit={limit} cursor={cursor} next={page.next_cursor} />
      </section>
    </Layout>
  );
};

export const ErrorPage: FC<{ viewer?: Viewer | undefined; title: string; message: string }> = ({ viewer, title, message }) => (
  <Layout title={title} page="error" viewer={viewer}>
    <h1>{title}</h1>
    <p role="alert">{message}</p>
    <p>
      <a href="/console">Back to the pending decisions</a>
    </p>
  </Layout>
);
