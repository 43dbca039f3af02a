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
  if ((page !== "queue" && page !== "decision") || !("EventSource" in window)) return;
  const live = document.getElementById("live");
  const announce = (text) => {
    if (!live) return;
    live.textContent = "";
    setTimeout(() => { live.textContent = text; }, 50);
  };
  const TYPES = ["created", "approval_recorded", "approved", "rejected", "escalated", "expired", "cancelled", "consumed"];
  const source = new EventSource("/console/stream");
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

export const CONSOLE_CSS = `:root { color-scheme: light; --ink: #1b1f24; --muted: #4a5360; --line: #c9ced6; --accent: #0b57d0; --bg: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--ink); background: var(--bg); }
a { color: var(--accent); }
:focus-visible { outline: 3px solid #f2a900; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5rem; }
.skip:focus { left: .5rem; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.top { display: flex; justify-content: space-between; align-items: center; gap: 1rem; padding: .75rem 1.5rem; background: #fff; border-bottom: 1px solid var(--line); }
.brand { margin: 0; font-weight: 700; }
.brand a { color: var(--ink); text-decoration: none; }
main { max-width: 72rem; margin: 0 auto; padding: 1.5rem; }
.help { color: var(--muted); font-size: .9rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 1rem; margin: 1rem 0; max-width: 40rem; }
label { display: block; font-weight: 600; margin-bottom: .25rem; }
input, textarea { width: 100%; font: inherit; padding: .5rem; border: 1px solid #767f8c; border-radius: 4px; }
button { font: inherit; padding: .45rem 1rem; border-radius: 4px; border: 1px solid #1b1f24; background: #fff; color: var(--ink); cursor: pointer; }
button[disabled] { opacity: .6; cursor: not-allowed; }
.button-approve { background: #126b2e; border-color: #126b2e; color: #fff; }
.button-reject { background: #a4161a; border-color: #a4161a; color: #fff; }
.button-escalate { background: #7a4b00; border-color: #7a4b00; color: #fff; }
table { width: 100%; border-collapse: collapse; background: #fff; }
caption { text-align: left; font-weight: 600; padding: .5rem 0; }
th, td { text-align: left; padding: .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
.priority, .status { font-weight: 600; }
.priority-critical, .status-rejected { color: #a4161a; }
.priority-high, .status-expired, .status-cancelled { color: #7a4b00; }
.status-approved { color: #126b2e; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
.facts dt { font-weight: 600; }
.facts dd { margin: 0; }
.hash { word-break: break-all; }
pre { background: #fff; border: 1px solid var(--line); padding: 1rem; overflow: auto; max-height: 24rem; }
.notice { padding: .75rem 1rem; border-radius: 4px; border: 1px solid; }
.notice-success { background: #e7f4ea; border-color: #126b2e; }
.notice-error { background: #fbe9e9; border-color: #a4161a; }
.notice-info { background: #e8f0fe; border-color: var(--accent); }
.actions { display: grid; grid-template-columns: repeat(auto-fit, minmax(18rem, 1fr)); gap: 1rem; }
.actions h2 { grid-column: 1 / -1; margin-bottom: 0; }
.actions .card { margin: 0; max-width: none; display: flex; flex-direction: column; gap: .25rem; }
.actions .card button { align-self: flex-start; margin-top: auto; }
.card h3 { margin-top: 0; }
details { margin: .5rem 0; }
summary { cursor: pointer; color: var(--accent); }
.pages { display: flex; gap: 1rem; margin-top: 1rem; }
.signout span { margin-right: .5rem; }
`;

/** Changes whenever the script or the style sheet does: the pages link `?v=ASSET_VERSION`. */
export const ASSET_VERSION = sha256Hex(CONSOLE_JS + CONSOLE_CSS).slice(0, 12);
