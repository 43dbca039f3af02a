import { eq, sql } from "drizzle-orm";
import { ROLE_PERMISSIONS } from "../auth/rbac";
import type { Database } from "../db/client";
import { rowsOf } from "../db/client";
import { uuidv7 } from "../db/ids";
import { rowFromDriver } from "../db/rows";
import { apiKeys, type DecisionRow, decisions, type NotificationDeliveryRow, notificationDeliveries, operators } from "../db/schema";
import type { Clock } from "../deps";
import type { Logger } from "../observability/logger";
import { decisionEmail, type EmailLinkSigner, type Mailer } from "./email";
import { consoleOnly, decisionMessage, type SlackApi, SlackSendError } from "./slack";

export interface DeliveryDeps {
  db: Database;
  clock: Clock;
  logger: Logger;
  slack?: SlackApi | undefined;
  mailer?: Mailer | undefined;
  links?: EmailLinkSigner | undefined;
  publicUrl?: string | undefined;
  /** CONSOLE_ONLY_PRIORITY: no buttons or action links from this priority up */
  consoleOnlyFrom: DecisionRow["priority"];
  linkTtlSeconds: number;
  maxAttempts: number;
  backoffBaseMs: number;
  batchSize?: number;
  /** how long a claimed row stays claimed by this replica before another may retry it */
  claimMs?: number;
}

/**
 * Claims due outbox rows (FOR UPDATE SKIP LOCKED, so replicas never send the same row at once) and
 * sends them. A row is marked sent only after its channel accepted it: a crash in between sends it
 * again (at least once). Failures are retried with exponential backoff, or after Slack's Retry-After,
 * up to maxAttempts. Returns how many rows were handled.
 */
export async function deliverDueNotifications(deps: DeliveryDeps): Promise<number> {
  const now = deps.clock.now();
  const claimUntil = new Date(now.getTime() + (deps.claimMs ?? 60_000));
  const claimed = rowsOf<Record<string, unknown>>(
    await deps.db.execute(sql`
      update ${notificationDeliveries} set locked_until = ${claimUntil.toISOString()}::timestamptz, attempts = attempts + 1
      where id in (
        select id from ${notificationDeliveries}
        where status = 'pending' and next_attempt_at <= ${now.toISOString()}::timestamptz
          and (locked_until is null or locked_until <= ${now.toISOString()}::timestamptz)
        order by next_attempt_at, id
        limit ${deps.batchSize ?? 50}
        for update skip locked)
      returning *`),
  ).map((raw) => rowFromDriver(notificationDeliveries, raw) as NotificationDeliveryRow);
  for (const delivery of claimed) await deliverOne(deps, delivery);
  return claimed.length;
}

async function deliverOne(deps: DeliveryDeps, delivery: NotificationDeliveryRow) {
  const finish = (set: Partial<typeof notificationDeliveries.$inferInsert>) =>
    deps.db
      .update(notificationDeliveries)
      .set({ ...set, lockedUntil: null })
      .where(eq(notificationDeliveries.id, delivery.id));
  try {
    const [decision] = await deps.db.select().from(decisions).where(eq(decisions.id, delivery.decisionId));
    if (!decision) throw new Error("the decision no longer exists");
    // Nothing left to ask: a request that waited past the verdict is not sent (Slack messages already posted are updated instead).
    if (delivery.purpose === "request" && decision.status !== "pending") {
      await finish({ status: "skipped", lastError: `the decision was ${decision.status} before this was sent` });
      return;
    }
    const ref = delivery.channel === "slack" ? await sendSlack(deps, delivery, decision) : await sendEmail(deps, delivery, decision);
    await finish({ status: "sent", sentAt: deps.clock.now(), externalRef: ref, lastError: null });
  } catch (error) {
    const message = (error as Error).message;
    const exhausted = delivery.attempts >= deps.maxAttempts;
    const retryAfterMs = error instanceof SlackSendError ? error.retryAfterMs : undefined;
    const delayMs = retryAfterMs ?? deps.backoffBaseMs * 2 ** Math.max(0, delivery.attempts - 1);
    deps.logger.warn("notification delivery failed", {
      delivery_id: delivery.id,
      decision_id: delivery.decisionId,
      channel: delivery.channel,
      attempt: delivery.attempts,
      final: exhausted,
      error: message,
    });
    await finish(
      exhausted
        ? { status: "failed", lastError: message }
        : { lastError: message, nextAttemptAt: new Date(deps.clock.now().getTime() + delayMs) },
    );
  }
}

async function requesterName(db: Database, decision: DecisionRow) {
  const [key] = await db.select({ name: apiKeys.name }).from(apiKeys).where(eq(apiKeys.id, decision.requesterKeyId));
  return key?.name ?? null;
}

async function sendSlack(deps: DeliveryDeps, delivery: NotificationDeliveryRow, decision: DecisionRow) {
  if (!deps.slack) throw new Error("Slack is not configured (SLACK_BOT_TOKEN)");
  const message = decisionMessage(decision, await requesterName(deps.db, decision), {
    publicUrl: deps.publicUrl,
    consoleOnlyFrom: deps.consoleOnlyFrom,
  });
  if (delivery.purpose === "update") {
    const ref = delivery.externalRef as { channel: string; ts: string };
    await deps.slack.update(ref, message);
    return ref;
  }
  const ref = await deps.slack.post(delivery.target, message);
  // A change that landed while the message was being posted found no message to update: catch up now.
  const [current] = await deps.db.select().from(decisions).where(eq(decisions.id, decision.id));
  if (current && current.updatedAt.getTime() !== decision.updatedAt.getTime()) {
    await deps.slack.update(
      ref,
      decisionMessage(current, await requesterName(deps.db, current), {
        publicUrl: deps.publicUrl,
        consoleOnlyFrom: deps.consoleOnlyFrom,
      }),
    );
  }
  return ref;
}

async function sendEmail(deps: DeliveryDeps, delivery: NotificationDeliveryRow, decision: DecisionRow) {
  if (!deps.mailer) throw new Error("email is not configured (SMTP_URL)");
  let links: { approve: string; reject: string } | undefined;
  if (delivery.operatorId && deps.links && deps.publicUrl) {
    const [person] = await deps.db.select().from(operators).where(eq(operators.id, delivery.operatorId));
    // Links only for a person who may decide and is not the requester; anyone else gets the summary.
    const mayDecide =
      person &&
      !person.disabledAt &&
      ROLE_PERMISSIONS[person.role].includes("decisions:resolve") &&
      person.id !== decision.requesterPersonId &&
      !consoleOnly(decision.priority, deps.consoleOnlyFrom);
    if (mayDecide) {
      const expires = Math.floor(Math.min(deps.clock.now().getTime() + deps.linkTtlSeconds * 1000, decision.expiresAt.getTime()) / 1000);
      const base = deps.publicUrl.replace(/\/$/, "");
      const link = (action: "approve" | "reject") =>
        `${base}/integrations/email/${deps.links!.sign({ v: 1, l: uuidv7(), d: decision.id, o: person.id, a: action, e: expires })}`;
      links = { approve: link("approve"), reject: link("reject") };
    }
  }
  const message = decisionEmail(decision, await requesterName(deps.db, decision), deps.publicUrl, links);
  return deps.mailer.send(delivery.target, message, `<${delivery.id}@arbiter>`);
}
