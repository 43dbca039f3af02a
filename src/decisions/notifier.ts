import type { DatabaseHandle } from "../db/client";
import { DECISION_STATUSES, type DecisionRow, type DecisionStatus } from "../db/schema";
import type { Logger } from "../observability/logger";

/**
 * Cross-replica fan-out of decision changes. Every state change sends `pg_notify` on this channel in
 * the transaction that makes it, so the notification arrives only once the change is committed, on
 * every replica connected to the database (PostgreSQL LISTEN/NOTIFY; PGlite delivers it in-process).
 *
 * Each process holds ONE listening connection per database and fans notifications out to in-memory
 * waiters, so thousands of long-polls cost a map entry and a timer each, and no database polling.
 * When a decision settles, its row is loaded once and handed to every waiter on it.
 */
export const DECISIONS_CHANNEL = "arbiter_decisions";

export interface DecisionChange {
  id: string;
  status: DecisionStatus;
  eventId: number;
}

/** A notification's payload is the JSON array `[decision id, status, audit event id]`. */
function decodeChange(payload: string): DecisionChange | undefined {
  try {
    const [id, status, eventId] = JSON.parse(payload) as unknown[];
    if (typeof id === "string" && (DECISION_STATUSES as readonly unknown[]).includes(status) && typeof eventId === "number") {
      return { id, status: status as DecisionStatus, eventId };
    }
  } catch {
    // a foreign or malformed message on our channel is ignored below
  }
  return undefined;
}

interface Waiter {
  settle(row: DecisionRow | undefined): void;
}

export interface DecisionNotifier {
  /** resolves once this process is listening; waiters and caches must not rely on notifications before */
  ready(): Promise<void>;
  /** whether ready() has succeeded: a synchronous check for hot paths */
  readonly listening: boolean;
  /** every change committed by any replica; returns the unsubscribe function */
  onChange(listener: (change: DecisionChange) => void): () => void;
  /**
   * Registers a waiter for the decision leaving `pending`. Call after ready() and BEFORE reading the
   * current state, so a change committed in between is not missed. `settled` resolves with the
   * settled row, or undefined at the timeout or when cancelled.
   */
  waitForSettlement(id: string, timeoutMs: number): { settled: Promise<DecisionRow | undefined>; cancel(): void };
  /**
   * A change this process committed itself: its waiters get the row the change returned at once,
   * without waiting for the notification to come back or reading the row again.
   */
  settledHere(row: DecisionRow): void;
  /** current number of in-memory waiters (for benchmarks and diagnostics) */
  readonly waiting: number;
  /** aborted at shutdown: event streams end, so the server can drain */
  readonly closing: AbortSignal;
  /** shutdown: every waiter answers now (with the current state) and new waits return at once */
  close(): void;
}

const notifiers = new WeakMap<DatabaseHandle, DecisionNotifier>();

/** The process-wide notifier of a database handle: created on first use, listening from the first ready(). */
export function decisionNotifier(
  database: DatabaseHandle,
  load: (id: string) => Promise<DecisionRow | undefined>,
  logger: Logger,
): DecisionNotifier {
  let notifier = notifiers.get(database);
  if (!notifier) {
    notifier = createNotifier(database, load, logger);
    notifiers.set(database, notifier);
  }
  return notifier;
}

function createNotifier(
  database: DatabaseHandle,
  load: (id: string) => Promise<DecisionRow | undefined>,
  logger: Logger,
): DecisionNotifier {
  const waiters = new Map<string, Set<Waiter>>();
  const listeners = new Set<(change: DecisionChange) => void>();
  let waiting = 0;
  let listening: Promise<void> | undefined;
  let active = false;
  const closing = new AbortController();

  const release = (id: string) => {
    const group = waiters.get(id);
    if (!group) return;
    waiters.delete(id);
    // One read serves every waiter on this decision, however many there are.
    load(id).then(
      (row) => {
        for (const waiter of group) waiter.settle(row);
      },
      (error: unknown) => {
        logger.warn("decision waiters released without a row", { decision_id: id, error: (error as Error).message });
        for (const waiter of group) waiter.settle(undefined);
      },
    );
  };

  const onMessage = (payload: string) => {
    const change = decodeChange(payload);
    if (!change) return;
    if (change.status !== "pending") release(change.id);
    for (const listener of listeners) {
      try {
        listener(change);
      } catch (error) {
        logger.warn("decision change listener failed", { error: (error as Error).message });
      }
    }
  };

  return {
    ready() {
      listening ??= database.listen(DECISIONS_CHANNEL, onMessage).then(
        () => {
          active = true;
        },
        (error: unknown) => {
          listening = undefined; // the next caller retries
          throw error;
        },
      );
      return listening;
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    waitForSettlement(id, timeoutMs) {
      let group = waiters.get(id);
      if (!group) waiters.set(id, (group = new Set()));
      const owner = group;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let resolveSettled!: (row: DecisionRow | undefined) => void;
      const settled = new Promise<DecisionRow | undefined>((resolve) => (resolveSettled = resolve));
      const waiter: Waiter = {
        settle(row) {
          if (timer === undefined) return; // already settled
          clearTimeout(timer);
          timer = undefined;
          waiting--;
          owner.delete(waiter);
          if (owner.size === 0 && waiters.get(id) === owner) waiters.delete(id);
          resolveSettled(row);
        },
      };
      owner.add(waiter);
      waiting++;
      timer = setTimeout(() => waiter.settle(undefined), closing.signal.aborted ? 0 : timeoutMs);
      return { settled, cancel: () => waiter.settle(undefined) };
    },
    settledHere(row) {
      if (row.status === "pending") return;
      const group = waiters.get(row.id);
      if (!group) return;
      waiters.delete(row.id);
      for (const waiter of group) waiter.settle(row);
    },
    get listening() {
      return active;
    },
    get waiting() {
      return waiting;
    },
    closing: closing.signal,
    close() {
      closing.abort();
      for (const group of [...waiters.values()]) for (const waiter of [...group]) waiter.settle(undefined);
    },
  };
}
