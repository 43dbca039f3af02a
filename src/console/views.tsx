import type { Child, FC } from "hono/jsx";
import type { Principal } from "../auth/rbac";
import type { DecisionView } from "../decisions/present";
import type { listQueue } from "../decisions/service";
import { DEFAULT_LIMIT } from "../http/pagination";
import { ASSET_VERSION } from "./assets";
import type { HistoryEntry } from "./history";

/** Server-rendered pages of the operator console: plain HTML forms that work without script. */

export type QueuePageData = Awaited<ReturnType<typeof listQueue>>;
export type Verb = "approve" | "reject" | "escalate";

/** A message for the page: `role="status"` for news, `role="alert"` for a refusal. */
export interface Notice {
  kind: "success" | "error";
  text: string;
}

const Time: FC<{ at: string }> = ({ at }) => <time datetime={at}>{at.replace("T", " ").replace(/\.\d+Z$/, " UTC")}</time>;

const NoticeBanner: FC<{ notice?: Notice | undefined }> = ({ notice }) =>
  notice ? (
    <p class={`notice notice-${notice.kind}`} role={notice.kind === "error" ? "alert" : "status"}>
      {notice.text}
    </p>
  ) : null;

const Layout: FC<{ title: string; page: string; principal?: Principal | undefined; data?: Record<string, string>; children?: Child }> = (
  props,
) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{`${props.title} · Arbiter console`}</title>
      <link rel="stylesheet" href={`/console/assets/console.css?v=${ASSET_VERSION}`} />
      <script src={`/console/assets/console.js?v=${ASSET_VERSION}`} defer />
    </head>
    <body data-page={props.page} {...Object.fromEntries(Object.entries(props.data ?? {}).map(([k, v]) => [`data-${k}`, v]))}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <p class="brand">
          <a href="/console">Arbiter console</a>
        </p>
        {props.principal ? (
          <form method="post" action="/console/logout" class="signout">
            <span>
              Signed in as <strong>{props.principal.keyName}</strong> ({props.principal.role})
            </span>{" "}
            <button type="submit">Sign out</button>
          </form>
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

export const QueuePage: FC<{ principal: Principal; queue: QueuePageData; limit: number; cursor?: string | undefined }> = ({
  principal,
  queue,
  limit,
  cursor,
}) => (
  <Layout title="Pending decisions" page="queue" principal={principal}>
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
              <th scope="col">Approvals needed</th>
              <th scope="col">Escalation</th>
              <th scope="col">Created</th>
              <th scope="col">Expires</th>
            </tr>
          </thead>
          <tbody>
            {queue.data.map((item) => (
              <tr data-decision-id={item.id}>
                <td>
                  <a href={`/console/decisions/${item.id}`}>{item.title}</a>
                </td>
                <td>
                  <code>{item.kind}</code>
                </td>
                <td>
                  <span class={`priority priority-${item.priority}`}>{item.priority}</span>
                </td>
                <td>{item.required_approvals}</td>
                <td>{item.escalation_level === 0 ? "none" : `level ${item.escalation_level}`}</td>
                <td>
                  <Time at={item.created_at} />
                </td>
                <td>
                  <Time at={item.expires_at} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <nav aria-label="Pages" class="pages">
        {cursor ? <a href={pageLink(limit)}>First page</a> : null}
        {queue.next_cursor ? <a href={pageLink(limit, queue.next_cursor)}>Next page</a> : null}
      </nav>
    </section>
  </Layout>
);

const KeyName: FC<{ id: string; name: string | null }> = ({ id, name }) => (
  <>
    {" by "}
    {name ? <strong>{name}</strong> : null} <code>{id}</code>
  </>
);

/** A queue page's address, keeping a non-default page size. */
const pageLink = (limit: number, cursor?: string) => {
  const query = new URLSearchParams({ ...(limit === DEFAULT_LIMIT ? {} : { limit: String(limit) }), ...(cursor ? { cursor } : {}) });
  return query.size === 0 ? "/console" : `/console?${query}`;
};

const Json: FC<{ value: unknown }> = ({ value }) => (
  <pre tabindex={0}>
    <code>{JSON.stringify(value, null, 2)}</code>
  </pre>
);

const ActionForm: FC<{ id: string; verb: Verb; label: string; reasonRequired: boolean; help: string; children?: Child }> = (props) => (
  <form method="post" action={`/console/decisions/${props.id}/${props.verb}`} class={`card action action-${props.verb}`}>
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
    <button type="submit" class={`button-${props.verb}`}>
      {props.label}
    </button>
  </form>
);

export const DecisionPage: FC<{ principal: Principal; decision: DecisionView; history: HistoryEntry[]; notice?: Notice | undefined }> = ({
  principal,
  decision: d,
  history,
  notice,
}) => {
  const pending = d.status === "pending";
  const requester = history.find((entry) => entry.type === "created")?.actorName;
  const canResolve = pending && principal.permissions.has("decisions:resolve");
  const canEscalate = pending && principal.permissions.has("decisions:escalate") && d.escalation_level < 3;
  return (
    <Layout title={d.title} page="decision" principal={principal} data={{ "decision-id": d.id, status: d.status }}>
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
          {canResolve ? (
            <>
              <ActionForm
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
                    <textarea id="approve-payload" name="payload" rows={8} spellcheck={false} aria-describedby="approve-payload-help">
                      {JSON.stringify(d.payload, null, 2)}
                    </textarea>
                    <p id="approve-payload-help" class="help">
                      Left as it is, the requested payload is approved. Changed, the edit is approved and its hash recorded.
                    </p>
                  </details>
                ) : null}
              </ActionForm>
              <ActionForm id={d.id} verb="reject" label="Reject" reasonRequired={true} help="One rejection rejects the decision." />
            </>
          ) : null}
          {canEscalate ? (
            <ActionForm
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

export const ErrorPage: FC<{ principal?: Principal | undefined; title: string; message: string }> = ({ principal, title, message }) => (
  <Layout title={title} page="error" principal={principal}>
    <h1>{title}</h1>
    <p role="alert">{message}</p>
    <p>
      <a href="/console">Back to the pending decisions</a>
    </p>
  </Layout>
);
