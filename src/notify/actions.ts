import { eq } from "drizzle-orm";
import { z } from "zod";
import { type Principal, ROLE_PERMISSIONS } from "../auth/rbac";
import type { Database } from "../db/client";
import { type DecisionRow, emailActionUses, type OperatorRow, operators } from "../db/schema";
import { approveDecision, type DecisionDeps, getDecision, rejectDecision } from "../decisions/service";
import { ApiError } from "../http/errors";
import type { EmailAction, LinkClaims } from "./email";
import { APPROVE_ACTION, consoleOnly, REASON_BLOCK, REASON_INPUT, REJECT_ACTION, REJECT_MODAL, rejectModal, type SlackApi } from "./slack";

/**
 * A person acting from a channel (a Slack click, an email link), with exactly their role's
 * permissions. No key is involved: the person's id stands for the key in the decision's approvals and
 * its audit trail.
 */
export function personPrincipal(person: OperatorRow, via: "slack" | "email"): Principal {
  return {
    keyId: person.id,
    keyName: person.name,
    personId: person.id,
    role: person.role,
    permissions: new Set(ROLE_PERMISSIONS[person.role]),
    via,
  };
}

/** Why a person may not act on a decision from a chat or email channel, or undefined when they may. */
export function channelRefusal(
  person: OperatorRow | undefined,
  decision?: { row: DecisionRow; consoleOnlyFrom: DecisionRow["priority"] },
): string | undefined {
  if (!person) return "You are not mapped to an Arbiter operator, so you cannot act on decisions here.";
  if (person.disabledAt) return "Your Arbiter operator record is disabled.";
  if (!ROLE_PERMISSIONS[person.role].includes("decisions:resolve")) return `A ${person.role} cannot approve or reject decisions.`;
  if (decision && consoleOnly(decision.row.priority, decision.consoleOnlyFrom)) {
    return `This decision is ${decision.row.priority} priority: review it in the console.`;
  }
  return undefined;
}

// ── Slack ───────────────────────────────────────────────────────────────────────────────────────
const SlackUser = z.object({ id: z.string().min(1).max(32) });
const BlockActions = z.object({
  type: z.literal("block_actions"),
  user: SlackUser,
  trigger_id: z.string().max(256).optional(),
  channel: z.object({ id: z.string().max(32) }).optional(),
  actions: z.array(z.object({ action_id: z.string().max(255), value: z.string().max(2000).optional() })).min(1),
});
const ViewSubmission = z.object({
  type: z.literal("view_submission"),
  user: SlackUser,
  view: z.object({
    callback_id: z.string().max(255),
    private_metadata: z.string().max(3000),
    state: z.object({
      values: z.record(z.string(), z.record(z.string(), z.object({ value: z.string().max(2000).nullable().optional() }))),
    }),
  }),
});
export const SlackInteraction = z.discriminatedUnion("type", [BlockActions, ViewSubmission]);
export type SlackInteraction = z.infer<typeof SlackInteraction>;

/** What the interactions endpoint answers Slack (an empty 200 acknowledges; a modal may get field errors). */
export type SlackReply = Record<string, unknown>;

async function personBySlackId(db: Database, slackUserId: string) {
  const [person] = await db.select().from(operators).where(eq(operators.slackUserId, slackUserId)).limit(1);
  return person;
}

const uuid = z.uuid();

/**
 * One Slack interaction, already authenticated by its signature. A button click approves, or opens
 * the reason modal for a rejection; submitting the modal rejects. Refusals reach the clicking user as
 * an ephemeral message and change nothing.
 */
export async function handleSlackInteraction(
  deps: DecisionDeps,
  slack: SlackApi | undefined,
  interaction: SlackInteraction,
): Promise<SlackReply> {
  const db = deps.database.db;
  const person = await personBySlackId(db, interaction.user.id);
  if (interaction.type === "block_actions") {
    const action = interaction.actions.find((a) => a.action_id === APPROVE_ACTION || a.action_id === REJECT_ACTION);
    if (!action) return {}; // a link button: nothing to do
    const tell = async (text: string) => {
      if (slack && interaction.channel) await slack.ephemeral(interaction.channel.id, interaction.user.id, text).catch(() => {});
      return { ok: false, error: text };
    };
    const id = uuid.safeParse(action.value);
    if (!id.success) return tell("This button does not name a decision.");
    const refused = channelRefusal(person);
    if (refused) return tell(refused);
    const principal = personPrincipal(person!, "slack");
    try {
      const decision = await getDecision(deps, principal, id.data);
      const critical = channelRefusal(person, { row: decision, consoleOnlyFrom: deps.config.CONSOLE_ONLY_PRIORITY });
      if (critical) return tell(critical);
      if (action.action_id === APPROVE_ACTION) {
        await approveDecision(deps, principal, id.data, { reason: undefined });
        return { ok: true };
      }
      if (!slack || !interaction.trigger_id) return tell("Reject from the console: this message cannot open a form.");
      await slack.openModal(interaction.trigger_id, rejectModal(decision));
      return { ok: true };
    } catch (error) {
      if (error instanceof ApiError) return tell(error.message);
      throw error;
    }
  }
  if (interaction.view.callback_id !== REJECT_MODAL) return {};
  const fieldError = (message: string) => ({ response_action: "errors", errors: { [REASON_BLOCK]: message } });
  const refused = channelRefusal(person);
  if (refused) return fieldError(refused);
  const id = uuid.safeParse(interaction.view.private_metadata);
  if (!id.success) return fieldError("This form does not name a decision.");
  const reason = interaction.view.state.values[REASON_BLOCK]?.[REASON_INPUT]?.value?.trim();
  if (!reason) return fieldError("Give a reason.");
  try {
    const principal = personPrincipal(person!, "slack");
    const critical = channelRefusal(person, {
      row: await getDecision(deps, principal, id.data),
      consoleOnlyFrom: deps.config.CONSOLE_ONLY_PRIORITY,
    });
    if (critical) return fieldError(critical);
    await rejectDecision(deps, principal, id.data, reason);
    return {};
  } catch (error) {
    if (error instanceof ApiError) return fieldError(error.message);
    throw error;
  }
}

// ── Email links ─────────────────────────────────────────────────────────────────────────────────
export interface LinkCheck {
  status: number;
  message: string;
  decision?: DecisionRow;
  person?: OperatorRow;
}

/** Whether a verified link may still be used: unexpired, unused, its person able to act. Changes nothing. */
export async function checkEmailLink(deps: DecisionDeps, claims: LinkClaims): Promise<LinkCheck> {
  const db = deps.database.db;
  if (claims.e * 1000 <= deps.clock.now().getTime()) return { status: 410, message: "This link has expired." };
  const [used] = await db.select().from(emailActionUses).where(eq(emailActionUses.linkId, claims.l)).limit(1);
  if (used) return { status: 410, message: "This link was already used." };
  const [person] = await db.select().from(operators).where(eq(operators.id, claims.o)).limit(1);
  const refused = channelRefusal(person);
  if (refused) return { status: 403, message: refused };
  try {
    const decision = await getDecision(deps, personPrincipal(person!, "email"), claims.d);
    const critical = channelRefusal(person, { row: decision, consoleOnlyFrom: deps.config.CONSOLE_ONLY_PRIORITY });
    if (critical) return { status: 403, message: critical };
    if (decision.status !== "pending") return { status: 409, message: `This decision is already ${decision.status}.`, decision };
    return { status: 200, message: "ok", decision, person: person! };
  } catch (error) {
    if (error instanceof ApiError) return { status: error.status, message: error.message };
    throw error;
  }
}

/**
 * Acts on a link, once: the link's id is recorded first (a replay, even a concurrent one, finds it
 * and gets 410), then the verdict is given as the link's person.
 */
export async function useEmailLink(deps: DecisionDeps, claims: LinkClaims, reason: string | undefined): Promise<LinkCheck> {
  const check = await checkEmailLink(deps, claims);
  if (check.status !== 200) return check;
  if (claims.a === "reject" && !reason) return { status: 400, message: "Give a reason for the rejection." };
  const recorded = await deps.database.db
    .insert(emailActionUses)
    .values({ linkId: claims.l, decisionId: claims.d, operatorId: claims.o, usedAt: deps.clock.now() })
    .onConflictDoNothing()
    .returning();
  if (recorded.length === 0) return { status: 410, message: "This link was already used." };
  const principal = personPrincipal(check.person!, "email");
  try {
    const decision = await verdict(deps, principal, claims.d, claims.a, reason);
    return {
      status: 200,
      message: decision.status === "pending" ? "Your approval is recorded; more are needed." : `The decision is ${decision.status}.`,
      decision,
    };
  } catch (error) {
    if (error instanceof ApiError) return { status: error.status, message: error.message };
    throw error;
  }
}

const verdict = (deps: DecisionDeps, principal: Principal, id: string, action: EmailAction, reason: string | undefined) =>
  action === "approve" ? approveDecision(deps, principal, id, { reason }) : rejectDecision(deps, principal, id, reason!);
