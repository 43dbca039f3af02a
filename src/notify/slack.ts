import { SlackAPIClient, SlackAPIConnectionError, SlackAPIError } from "slack-web-api-client";
import { constantTimeEqual, hmacSha256Hex } from "../crypto/hash";
import { DECISION_PRIORITIES, type DecisionRow } from "../db/schema";

type Priority = DecisionRow["priority"];
/**
 * Decisions at `threshold` priority or above (CONSOLE_ONLY_PRIORITY) are never decided with one click
 * in chat or email: the identity behind a click is only as strong as the mailbox or chat account.
 */
export const consoleOnly = (priority: Priority, threshold: Priority) =>
  DECISION_PRIORITIES.indexOf(priority) >= DECISION_PRIORITIES.indexOf(threshold);
export const APPROVE_ACTION = "arbiter_approve";
export const REJECT_ACTION = "arbiter_reject";
export const REJECT_MODAL = "arbiter_reject_modal";
export const REASON_BLOCK = "reason";
export const REASON_INPUT = "reason_input";
/** Slack's replay window for signed requests. */
export const SLACK_SIGNATURE_MAX_AGE_SECONDS = 300;

export const consoleLink = (publicUrl: string | undefined, decisionId: string) =>
  publicUrl ? `${publicUrl.replace(/\/$/, "")}/console/decisions/${decisionId}` : undefined;

/** Slack mrkdwn treats &, < and > as control characters: escape text that came from a caller. */
export const slackEscape = (text: string) => text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

const PAYLOAD_PREVIEW_CHARS = 2_500;

export interface DecisionMessage {
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: Block Kit JSON
  blocks: any[];
}

/**
 * A decision as a Block Kit message. Pending decisions get Approve / Reject buttons, except those at
 * or above the console-only priority, which get a "Review in console" link only; decided ones show their outcome
 * and no buttons, so an old message cannot be acted on.
 */
export function decisionMessage(
  decision: DecisionRow,
  requesterName: string | null,
  options: { publicUrl: string | undefined; consoleOnlyFrom: Priority },
): DecisionMessage {
  const { publicUrl } = options;
  const pending = decision.status === "pending";
  const link = consoleLink(publicUrl, decision.id);
  const onlyInConsole = consoleOnly(decision.priority, options.consoleOnlyFrom);
  const payload = JSON.stringify(decision.approvedPayload ?? decision.payload, null, 2);
  const preview = payload.length > PAYLOAD_PREVIEW_CHARS ? `${payload.slice(0, PAYLOAD_PREVIEW_CHARS)}\n…` : payload;
  const state = pending
    ? `Pending · ${decision.approverPeople.length} of ${decision.requiredApprovals} approvals · level ${decision.escalationLevel}`
    : `*${decision.status}*${decision.resolutionReason ? `: ${slackEscape(decision.resolutionReason)}` : ""}`;
  const blocks: DecisionMessage["blocks"] = [
    { type: "header", text: { type: "plain_text", text: decision.title.slice(0, 150) } },
    {
      type: "section",
      fields: [
        { type: "mrkdwn", text: `*Kind*\n\`${slackEscape(decision.kind)}\`` },
        { type: "mrkdwn", text: `*Priority*\n${decision.priority}` },
        { type: "mrkdwn", text: `*Requested by*\n${slackEscape(requesterName ?? decision.requesterKeyId)}` },
        {
          type: "mrkdwn",
          text: `*Expires*\n<!date^${Math.floor(decision.expiresAt.getTime() / 1000)}^{date_short_pretty} {time}|${decision.expiresAt.toISOString()}>`,
        },
      ],
    },
    { type: "section", text: { type: "mrkdwn", text: `\`\`\`${slackEscape(preview)}\`\`\`` } },
    { type: "context", elements: [{ type: "mrkdwn", text: `${state} · \`${decision.id}\`` }] },
  ];
  if (pending) {
    const elements = [];
    if (!onlyInConsole) {
      elements.push(
        { type: "button", action_id: APPROVE_ACTION, style: "primary", value: decision.id, text: { type: "plain_text", text: "Approve" } },
        { type: "button", action_id: REJECT_ACTION, style: "danger", value: decision.id, text: { type: "plain_text", text: "Reject" } },
      );
    }
    if (link)
      elements.push({ type: "button", action_id: "arbiter_console", url: link, text: { type: "plain_text", text: "Review in console" } });
    if (onlyInConsole) {
      blocks.push({
        type: "context",
        elements: [{ type: "mrkdwn", text: `Priority ${decision.priority}: decide in the console, where you sign in with your own key.` }],
      });
    }
    if (elements.length > 0) blocks.push({ type: "actions", block_id: `decision:${decision.id}`, elements });
  }
  return { text: `${pending ? "Approval needed" : `Decision ${decision.status}`}: ${decision.title}`, blocks };
}

export function rejectModal(decision: DecisionRow) {
  return {
    type: "modal",
    callback_id: REJECT_MODAL,
    private_metadata: decision.id,
    title: { type: "plain_text", text: "Reject decision" },
    submit: { type: "plain_text", text: "Reject" },
    close: { type: "plain_text", text: "Cancel" },
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: `*${slackEscape(decision.title)}*` } },
      {
        type: "input",
        block_id: REASON_BLOCK,
        label: { type: "plain_text", text: "Reason" },
        element: { type: "plain_text_input", action_id: REASON_INPUT, multiline: true, max_length: 2000 },
      },
    ],
  };
}

/**
 * Checks Slack's request signature: `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<raw body>` with the
 * signing secret, compared in constant time, and the timestamp within five minutes of now (replays of
 * an old request are refused even with a valid signature).
 */
export function verifySlackSignature(
  secret: string,
  headers: { timestamp: string | undefined; signature: string | undefined },
  rawBody: string,
  nowMs: number,
): { ok: true } | { ok: false; reason: string } {
  const { timestamp, signature } = headers;
  if (!timestamp || !signature) return { ok: false, reason: "missing X-Slack-Request-Timestamp or X-Slack-Signature" };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "malformed timestamp" };
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > SLACK_SIGNATURE_MAX_AGE_SECONDS) return { ok: false, reason: "stale timestamp" };
  const expected = `v0=${hmacSha256Hex(secret, `v0:${timestamp}:${rawBody}`)}`;
  const encoder = new TextEncoder();
  if (!constantTimeEqual(encoder.encode(signature), encoder.encode(expected))) return { ok: false, reason: "signature mismatch" };
  return { ok: true };
}

/** A Slack Web API failure: `retryAfterMs` when Slack asked to slow down (429 Retry-After). */
export class SlackSendError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** How long one Web API call may take before it counts as failed (the outbox retries it later). */
export const SLACK_CALL_TIMEOUT_MS = 10_000;

/**
 * The Web API calls Arbiter makes, over slack-web-api-client (fetch-based); 429s come back as
 * SlackSendError with the delay. A call that does not answer within `timeoutMs` fails, so a stuck
 * Slack cannot hold the sender: the client takes no abort signal, so the abandoned request may still
 * land, which the outbox's at-least-once delivery already allows.
 */
export function createSlackApi(token: string, baseUrl: string, timeoutMs = SLACK_CALL_TIMEOUT_MS) {
  // No built-in retries: the outbox retries with its own backoff and honours Retry-After.
  const client = new SlackAPIClient(token, {
    baseUrl: baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`,
    retryHandlers: [],
    throwSlackAPIError: true,
  });
  const call = async <T>(run: () => Promise<T>): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SlackSendError(`Slack did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([run(), late]);
    } catch (error) {
      if (error instanceof SlackSendError) throw error;
      if (error instanceof SlackAPIConnectionError) {
        const retryAfter = Number(error.headers?.get("retry-after"));
        throw new SlackSendError(
          `Slack answered HTTP ${error.status}`,
          error.status === 429 && Number.isFinite(retryAfter) ? retryAfter * 1000 : undefined,
        );
      }
      if (error instanceof SlackAPIError) throw new SlackSendError(`Slack refused ${error.apiName}: ${error.error}`);
      throw new SlackSendError(`Slack could not be reached: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    async post(channel: string, message: DecisionMessage) {
      const result = await call(() => client.chat.postMessage({ channel, text: message.text, blocks: message.blocks }));
      return { channel: String(result.channel), ts: String(result.ts) };
    },
    async update(ref: { channel: string; ts: string }, message: DecisionMessage) {
      await call(() => client.chat.update({ channel: ref.channel, ts: ref.ts, text: message.text, blocks: message.blocks }));
    },
    async ephemeral(channel: string, user: string, text: string) {
      await call(() => client.chat.postEphemeral({ channel, user, text }));
    },
    // biome-ignore lint/suspicious/noExplicitAny: a Block Kit view
    async openModal(triggerId: string, view: any) {
      await call(() => client.views.open({ trigger_id: triggerId, view }));
    },
  };
}
export type SlackApi = ReturnType<typeof createSlackApi>;
