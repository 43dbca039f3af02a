import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { utf8ToBytes } from "@noble/hashes/utils.js";
import { createTransport } from "nodemailer";
import { z } from "zod";
import { constantTimeEqual } from "../crypto/hash";
import type { DecisionRow } from "../db/schema";
import { consoleLink } from "./slack";

export const EMAIL_ACTIONS = ["approve", "reject"] as const;
export type EmailAction = (typeof EMAIL_ACTIONS)[number];

/** What a link says: single-use id, decision, person, action, expiry (Unix seconds). */
const LinkClaims = z.object({
  v: z.literal(1),
  l: z.uuid(),
  d: z.uuid(),
  o: z.uuid(),
  a: z.enum(EMAIL_ACTIONS),
  e: z.number().int().positive(),
});
export type LinkClaims = z.infer<typeof LinkClaims>;

const base64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
const fromBase64url = (text: string) => Uint8Array.from(atob(text.replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0));

/**
 * Action links are signed with a key derived from EMAIL_LINK_SECRET (HKDF-SHA256 with its own
 * label), so the configured secret itself never signs anything and another use of it could not
 * produce a valid link.
 */
export function emailLinkSigner(secret: string) {
  const key = hkdf(sha256, utf8ToBytes(secret), utf8ToBytes("arbiter"), utf8ToBytes("email-action-links/v1"), 32);
  const mac = (body: string) => hmac(sha256, key, utf8ToBytes(body));
  return {
    sign(claims: LinkClaims): string {
      const body = base64url(utf8ToBytes(JSON.stringify(claims)));
      return `${body}.${base64url(mac(body))}`;
    },
    /** The claims of a well-signed link, or why it is refused (its expiry is the caller's to check). */
    verify(token: string): { ok: true; claims: LinkClaims } | { ok: false } {
      if (token.length > 1024) return { ok: false };
      const [body, signature, extra] = token.split(".");
      if (!body || !signature || extra !== undefined) return { ok: false };
      try {
        if (!constantTimeEqual(fromBase64url(signature), mac(body))) return { ok: false };
        const parsed = LinkClaims.safeParse(JSON.parse(new TextDecoder().decode(fromBase64url(body))));
        return parsed.success ? { ok: true, claims: parsed.data } : { ok: false };
      } catch {
        return { ok: false };
      }
    },
  };
}
export type EmailLinkSigner = ReturnType<typeof emailLinkSigner>;

const escapeHtml = (text: string) =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;").replaceAll("'", "&#39;");

export interface EmailMessage {
  subject: string;
  text: string;
  html: string;
}

/**
 * An approval request as plain text and HTML. `links` are present only when the recipient is a person
 * who may decide: each opens a confirmation page, and only that page's POST acts.
 */
export function decisionEmail(
  decision: DecisionRow,
  requesterName: string | null,
  publicUrl: string | undefined,
  links: { approve: string; reject: string } | undefined,
): EmailMessage {
  const payload = JSON.stringify(decision.payload, null, 2);
  const preview = payload.length > 4000 ? `${payload.slice(0, 4000)}\n…` : payload;
  const review = consoleLink(publicUrl, decision.id);
  const facts: [string, string][] = [
    ["Kind", decision.kind],
    ["Priority", decision.priority],
    ["Requested by", requesterName ?? decision.requesterKeyId],
    ["Approvals", `${decision.approverPeople.length} of ${decision.requiredApprovals}`],
    ["Expires", decision.expiresAt.toISOString()],
    ["Payload SHA-256", decision.payloadHash],
  ];
  const text = [
    `Approval needed: ${decision.title}`,
    "",
    ...facts.map(([label, value]) => `${label}: ${value}`),
    "",
    "Payload:",
    preview,
    "",
    ...(links ? [`Approve: ${links.approve}`, `Reject: ${links.reject}`, "Each link asks you to confirm; it works once."] : []),
    ...(review ? [`Review in the console: ${review}`] : []),
  ].join("\n");
  const html = `<!doctype html><html><body style="font-family:sans-serif">
<h1 style="font-size:1.2em">Approval needed: ${escapeHtml(decision.title)}</h1>
<table>${facts.map(([label, value]) => `<tr><th align="left">${escapeHtml(label)}</th><td>${escapeHtml(value)}</td></tr>`).join("")}</table>
<pre>${escapeHtml(preview)}</pre>
${links ? `<p><a href="${escapeHtml(links.approve)}">Approve</a> · <a href="${escapeHtml(links.reject)}">Reject</a></p><p>Each link asks you to confirm; it works once.</p>` : ""}
${review ? `<p><a href="${escapeHtml(review)}">Review in the console</a></p>` : ""}
</body></html>`;
  return { subject: `[Arbiter] Approval needed: ${decision.title}`.slice(0, 200), text, html };
}

/** How long an SMTP server may take to accept a connection, greet, or answer, unless SMTP_URL says otherwise. */
export const SMTP_TIMEOUT_MS = 10_000;

/**
 * Sends over SMTP_URL. The Message-ID is derived from the outbox row, so a retried send is
 * recognisably the same message. nodemailer's own timeouts (2 min to connect, 10 min of socket
 * silence) would let one stuck server hold the sender; `timeoutMs` bounds each step instead.
 */
export function createMailer(smtpUrl: string, from: string, timeoutMs = SMTP_TIMEOUT_MS) {
  // Options in the URL's query string (e.g. ?socketTimeout=60000) win over these.
  const transport = createTransport({ url: smtpUrl, connectionTimeout: timeoutMs, greetingTimeout: timeoutMs, socketTimeout: timeoutMs });
  return {
    async send(to: string, message: EmailMessage, messageId: string) {
      const info = await transport.sendMail({ from, to, subject: message.subject, text: message.text, html: message.html, messageId });
      return { message_id: String(info.messageId ?? messageId) };
    },
    close: () => transport.close(),
  };
}
export type Mailer = ReturnType<typeof createMailer>;

/** A small self-contained HTML page for the link flow (mail clients open it in a browser). */
export function actionPage(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>
<meta name="referrer" content="no-referrer"/><title>${escapeHtml(title)} · Arbiter</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}pre{background:#f4f4f4;padding:.5rem;overflow:auto}button{font-size:1rem;padding:.4rem 1rem}</style>
</head><body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
}

export { escapeHtml };
