import { type DecisionDeps, escalateOnDeadline, notifierOf, settleOverdue } from "./service";
import { deliverDueWebhooks } from "./webhooks";

/**
 * The decisions' background work for one process: the expiry and escalation-deadline sweeper and
 * the webhook delivery worker. src/server.ts starts it after the dependencies are open and stops it on shutdown; createApp
 * never starts timers. Both loops are safe with any number of replicas (SKIP LOCKED claims).
 */
export interface DecisionWorkers {
  /** ends the loops, answers parked long-polls and ends event streams, so the HTTP server can drain */
  stop(): Promise<void>;
}

/** Runs `task` every `intervalMs`, never overlapping itself; a failing run is logged and retried next time. */
export function repeat(task: () => Promise<unknown>, intervalMs: number, onError: (error: unknown) => void) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const tick = () => {
    running = task()
      .then(
        () => undefined,
        (error: unknown) => onError(error),
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  timer = setTimeout(tick, intervalMs);
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}

export function startDecisionWorkers(deps: DecisionDeps): DecisionWorkers {
  const log = (what: string) => (error: unknown) => deps.logger.error(`${what} failed`, { error: (error as Error).message });
  const stops = [
    repeat(
      async () => {
        // Drain a backlog in batches, then wait for the next interval.
        while ((await settleOverdue(deps, {})) === deps.config.DECISION_SWEEP_BATCH_SIZE);
        while ((await escalateOnDeadline(deps)) === deps.config.DECISION_SWEEP_BATCH_SIZE);
      },
      deps.config.DECISION_SWEEP_INTERVAL_MS,
      log("decision expiry sweep"),
    ),
    repeat(() => deliverDueWebhooks(deps), deps.config.WEBHOOK_POLL_INTERVAL_MS, log("webhook delivery")),
  ];
  return {
    async stop() {
      notifierOf(deps).close();
      await Promise.all(stops.map((stop) => stop()));
    },
  };
}
