import { sha256Hex } from "../crypto/hash";

/**
 * The console's only script and style sheet, served from /console/assets/ so the pages' Content
 * Security Policy can stay `script-src 'self'` with no inline code. The pages work without the
 * script; with it, they follow the decision event stream (GET /console/stream) and update in place.
 */

export const CONSOLE_JS = `"use strict";
(() => {
  const body = document.body;
  const page = body.dataset.page;
  if (page === "decision") {
    // An edited payload must be JSON before the form is sent.
    const editor = document.getElementById("approve-payload");
    const problem = document.getElementById("approve-payload-error");
    if (editor && problem) {
      editor.form.addEventListener("submit", (event) => {
        try {
          JSON.parse(editor.value);
          editor.removeAttribute("aria-invalid");
          problem.textContent = "";
        } catch (error) {
          event.preventDefault();
          editor.setAttribute("aria-invalid", "true");
          problem.textContent = "Not valid JSON, nothing was sent: " + error.message;
          editor.closest("details").open = true;
          editor.focus();
        }
      });
    }
    // Shortcuts: a key moves focus to its verdict (Enter then sends it), never while typing in a field.
    const keys = {};
    for (const button of document.querySelectorAll(".actions button[aria-keyshortcuts]")) keys[button.getAttribute("aria-keyshortcuts")] = button;
    document.addEventListener("keydown", (event) => {
      const target = event.target;
      if (event.ctrlKey || event.metaKey || event.altKey || target.closest("input, textarea, select, [contenteditable]")) return;
      const button = keys[event.key];
      if (!button || button.disabled) return;
      event.preventDefault();
      const reason = button.form.querySelector("textarea[required]");
      (reason || button).focus();
      button.scrollIntoView({ block: "nearest" });
    });
  }
  if ((page !== "queue" && page !== "decision") || !("EventSource" in window)) return;
  const live = document.getElementById("live");
  const announce = (text) => {
    if (!live) return;
    live.textContent = "";
    setTimeout(() => { live.textContent = text; }, 50);
  };
  const TYPES = ["created", "approval_recorded", "approved", "rejected", "escalated", "expired", "cancelled", "consumed"];
  // From the last event before the page was rendered; a reconnect resumes from the last event received.
  const after = body.dataset.streamAfter;
  const source = new EventSource("/console/stream" + (after ? "?last_event_id=" + encodeURIComponent(after) : ""));
  source.addEventListener("open", () => { body.dataset.stream = "open"; });
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) {
      body.dataset.stream = "reconnecting";
      return;
    }
    // Refused on reconnect: the session ended (signed out, revoked or expired).
    body.dataset.stream = "closed";
    announce("Live updates stopped. Reload the page; you may need to sign in again.");
  });
  window.addEventListener("pagehide", () => source.close());

  if (page === "queue") {
    let scheduled = false;
    const refresh = async () => {
      scheduled = false;
      const res = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!res.ok) return;
      const fresh = new DOMParser().parseFromString(await res.text(), "text/html").getElementById("queue");
      const current = document.getElementById("queue");
      if (fresh && current) current.replaceWith(fresh);
    };
    for (const type of TYPES) {
      source.addEventListener(type, () => {
        if (type === "created") announce("A new decision is waiting.");
        else if (type !== "approval_recorded" && type !== "consumed") announce("A decision was " + type + ".");
        if (!scheduled) {
          scheduled = true;
          setTimeout(refresh, 150);
        }
      });
    }
    return;
  }

  const id = body.dataset.decisionId;
  const stale = document.getElementById("stale");
  for (const type of TYPES) {
    source.addEventListener(type, (event) => {
      const data = JSON.parse(event.data);
      if (data.decision_id !== id) return;
      if (stale) stale.hidden = false;
      announce("This decision was " + type.replace("_", " ") + ".");
      if (data.to_status !== "pending") {
        for (const button of document.querySelectorAll(".actions button")) button.disabled = true;
      }
    });
  }
})();
`;

export const CONSOLE_CSS = `:root { color-scheme: light dark; --ink: #1b1f24; --muted: #4a5360; --line: #c9ced6; --accent: #0b57d0; --bg: #f7f8fa; --panel: #fff;
  --ok: #126b2e; --bad: #a4161a; --warn: #7a4b00; --ok-bg: #e7f4ea; --bad-bg: #fbe9e9; --info-bg: #e8f0fe; --field: #767f8c; }
@media (prefers-color-scheme: dark) {
  :root { --ink: #e6e9ee; --muted: #aab3bf; --line: #3a414c; --accent: #8ab4f8; --bg: #14171b; --panel: #1d2127;
    --ok: #6fd08c; --bad: #ff8a8a; --warn: #f2c46d; --ok-bg: #15301e; --bad-bg: #3a1a1b; --info-bg: #1a2740; --field: #8a94a3; }
  .button-approve, .button-reject, .button-escalate { color: #111 !important; }
}
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--ink); background: var(--bg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid #f2a900; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: var(--panel); padding: .5rem; }
.skip:focus { left: .5rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.top { display: flex; justify-content: space-between; align-items: center; gap: 1rem; padding: .75rem 1.5rem; background: var(--panel); border-bottom: 1px solid var(--line); }
.brand { margin: 0; font-weight: 700; }
.brand a { color: var(--ink); text-decoration: none; }
main { max-width: 72rem; margin: 0 auto; padding: 1.5rem; }
.help { color: var(--muted); font-size: .9rem; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 1rem; margin: 1rem 0; max-width: 40rem; }
label { display: block; font-weight: 600; margin-bottom: .25rem; }
input, textarea { width: 100%; font: inherit; padding: .5rem; border: 1px solid var(--field); border-radius: 4px; background: var(--panel); color: var(--ink); }
button { font: inherit; padding: .45rem 1rem; border-radius: 4px; border: 1px solid var(--ink); background: var(--panel); color: var(--ink); cursor: pointer; }
button[disabled] { opacity: .6; cursor: not-allowed; }
.button-approve { background: var(--ok); border-color: var(--ok); color: #fff; }
.button-reject { background: var(--bad); border-color: var(--bad); color: #fff; }
.button-escalate { background: var(--warn); border-color: var(--warn); color: #fff; }
table { width: 100%; border-collapse: collapse; background: var(--panel); }
caption { text-align: left; font-weight: 600; padding: .5rem 0; }
th, td { text-align: left; padding: .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
.priority, .status { font-weight: 600; }
.priority-critical, .status-rejected, .field-error { color: var(--bad); }
.priority-high, .status-expired, .status-cancelled { color: var(--warn); }
.status-approved { color: var(--ok); }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
.facts dt { font-weight: 600; }
.facts dd { margin: 0; }
.hash { word-break: break-all; }
pre { background: var(--panel); border: 1px solid var(--line); padding: 1rem; overflow: auto; max-height: 24rem; }
.notice { padding: .75rem 1rem; border-radius: 4px; border: 1px solid; }
.notice-success { background: var(--ok-bg); border-color: var(--ok); }
.notice-error { background: var(--bad-bg); border-color: var(--bad); }
.notice-info { background: var(--info-bg); border-color: var(--accent); }
.actions { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 1rem; }
.actions h2, .actions > p { grid-column: 1 / -1; margin-bottom: 0; }
.actions .card { margin: 0; max-width: none; display: flex; flex-direction: column; gap: .25rem; }
.actions .card button { align-self: flex-start; margin-top: auto; }
.card h3 { margin-top: 0; }
details { margin: .5rem 0; }
summary { cursor: pointer; color: var(--accent); }
.pages { display: flex; gap: 1rem; margin-top: 1rem; }
.signout span { margin-right: .5rem; }
.sections { display: flex; gap: 1rem; margin-right: auto; }
.sections a[aria-current] { font-weight: 700; text-decoration: none; }
.filters { display: flex; flex-wrap: wrap; gap: .75rem 1rem; align-items: flex-end; max-width: none; }
.filters input, .filters select { width: auto; font: inherit; padding: .4rem; }
kbd { font: .85em ui-monospace, monospace; border: 1px solid var(--line); border-radius: 3px; padding: 0 .3rem; }
.field-error:empty { display: none; }
@media (max-width: 40rem) {
  .top { flex-wrap: wrap; padding: .5rem 1rem; }
  main { padding: 1rem; }
  .facts { grid-template-columns: 1fr; }
  .facts dd { margin-bottom: .5rem; }
  table, caption, thead, tbody, tr, th, td { display: block; }
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  tr { border-bottom: 1px solid var(--line); padding: .5rem 0; }
  td { border: 0; padding: .1rem .5rem; }
  td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); }
}
`;

/** A file name carrying its content's hash: a changed file has a new name, so browsers may keep one forever. */
const hashedName = (name: string, extension: string, body: string) => `${name}.${sha256Hex(body).slice(0, 12)}.${extension}`;

export const CONSOLE_JS_FILE = hashedName("console", "js", CONSOLE_JS);
export const CONSOLE_CSS_FILE = hashedName("console", "css", CONSOLE_CSS);
