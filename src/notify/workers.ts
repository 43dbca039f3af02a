import type { NotificationChannel } from "../db/schema";
import { repeat } from "../decisions/background";
import type { DecisionDeps } from "../decisions/service";
import { type DeliveryDeps, deliverDueNotifications } from "./deliver";
import { type DispatchDeps, dispatchNotificationEvents } from "./dispatch";
import { createMailer, emailLinkSigner } from "./email";
import { createSlackApi } from "./slack";

/** What dispatching and delivering need, built from the configuration: channels without settings are off. */
export function notificationDeps(deps: Pick<DecisionDeps, "database" | "clock" | "logger" | "config">): {
  dispatch: DispatchDeps;
  delivery: DeliveryDeps;
} {
  const { config } = deps;
  const channels = new Set<NotificationChannel>();
  if (config.SLACK_BOT_TOKEN) channels.add("slack");
  if (config.SMTP_URL) channels.add("email");
  const base = { db: deps.database.db, clock: deps.clock, logger: deps.logger };
  return {
    dispatch: { ...base, channels },
    delivery: {
      ...base,
      slack: config.SLACK_BOT_TOKEN ? createSlackApi(config.SLACK_BOT_TOKEN, config.SLACK_API_URL) : undefined,
      mailer: config.SMTP_URL ? createMailer(config.SMTP_URL, config.EMAIL_FROM) : undefined,
      links: config.EMAIL_LINK_SECRET ? emailLinkSigner(config.EMAIL_LINK_SECRET) : undefined,
      publicUrl: config.PUBLIC_URL,
      consoleOnlyFrom: config.CONSOLE_ONLY_PRIORITY,
      linkTtlSeconds: config.EMAIL_LINK_TTL_SECONDS,
      maxAttempts: config.NOTIFY_MAX_ATTEMPTS,
      backoffBaseMs: config.NOTIFY_BACKOFF_BASE_MS,
    },
  };
}

/**
 * The outbox loops of one process: the dispatcher turns new audit events into outbox rows (one
 * replica at a time), the sender delivers due rows (every replica, SKIP LOCKED). Off when neither
 * Slack nor email is configured.
 */
export function startNotificationWorkers(deps: Pick<DecisionDeps, "database" | "clock" | "logger" | "config">) {
  const { dispatch, delivery } = notificationDeps(deps);
  if (dispatch.channels.size === 0) return { stop: async () => {} };
  const log = (what: string) => (error: unknown) => deps.logger.error(`${what} failed`, { error: (error as Error).message });
  const stops = [
    repeat(
      async () => {
        while ((await dispatchNotificationEvents(dispatch)) > 0);
        while ((await deliverDueNotifications(delivery)) > 0);
      },
      deps.config.NOTIFY_POLL_INTERVAL_MS,
      log("notification delivery"),
    ),
  ];
  return {
    async stop() {
      await Promise.all(stops.map((stop) => stop()));
      delivery.mailer?.close();
    },
  };
}
