import { sql } from "drizzle-orm";
import type { DatabaseHandle } from "../db/client";
import { DECISION_STATUSES, type DecisionRow, type DecisionStatus } from "../db/schema";
import type { Logger } from "../observability/logger";

/**
 * Cross-replica fan-out of decision changes (PostgreSQL LISTEN/NOTIFY; PGlite delivers in-process).
 *
 * A change is announced AFTER its transaction commits, never from inside it: PostgreSQL serialises
 * the commits of notifying transactions behind one lock held across the commit's WAL flush, which
 * measured 342 against 2,288 single-row inserts a second at 32 clients. The process that committed
 * a change delivers it to its own listeners and waiters at once, and batches the notifications for
 * the other replicas: every change announced in the same turn of the event loop goes out in ONE
 * statement (payloads of up to NOTIFY_BATCH changes). The cost: a process that dies between its
 * commit and that statement (milliseconds) leaves other replicas unaware of the change; their
 * long-polls then answer at the end of their wait with a fresh read, and event streams pick the
 * change up on their idle re-scan. What is stored is never affected, only how fast others hear.
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
  /** a decision this process just created (never sent to other replicas): no cache can hold a copy of it yet */
  created?: boolean;
}

/** Changes per notification: each is ~60 bytes of JSON, and a payload must stay under 8,000 bytes. */
const NOTIFY_BATCH = 100;

const isChange = (value: unknown): value is [string, DecisionStatus, number] =>
  Array.isArray(value) &&
  typeof value[0] === "string" &&
  (DECISION_STATUSES as readonly unknown[]).includes(value[1]) &&
  typeof value[2] === "number";

/** A payload is a JSON array of `[decision id, status, audit event id]` entries (one bare entry is accepted too). */
function decodeChanges(payload: string): DecisionChange[] {
  try {
    const parsed = JSON.parse(payload) as unknown;
    const entries = isChange(parsed) ? [parsed] : Array.isArray(parsed) ? parsed.filter(isChange) : [];
    return entries.map(([id, status, eventId]) => ({ id, status, eventId }));
  } catch {
    return []; // a foreign or malformed message on our channel is ignored
  }
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
   * A change this process has committed, with the row it returned: delivered here at once (waiters
   * get that row, with no read), and to the other replicas by NOTIFY.
   */
  announce(change: DecisionChange, committed: DecisionRow): void;
  /**
   * Registers a waiter for the decision leaving `pending`. Call after ready() and BEFORE reading the
   * current state, so a change committed in between is not missed. `settled` resolves with the
   * settled row, or undefined at the timeout or when cancelled.
   */
  waitForSettlement(id: string, timeoutMs: number): { settled: Promise<DecisionRow | undefined>; cancel(): void };
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

  /** Settles every waiter on a decision: with the committed row when this process made the change, else one read for all. */
  const release = (id: string, committed?: DecisionRow) => {
    const group = waiters.get(id);
    if (!group) return;
    waiters.delete(id);
    if (committed) {
      for (const waiter of group) waiter.settle(committed);
      return;
    }
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

  const deliver = (change: DecisionChange, committed?: DecisionRow) => {
    if (change.status !== "pending") release(change.id, committed);
    for (const listener of listeners) {
      try {
        listener(change);
      } catch (error) {
        logger.warn("decision change listener failed", { error: (error as Error).message });
      }
    }
  };
  // A process hears its own notifications too: those it already delivered are skipped.
  const deliveredHere = new Set<number>();
  const onMessage = (payload: string) => {
    for (const change of decodeChanges(payload)) {
      if (deliveredHere.delete(change.eventId)) continue;
      deliver(change);
    }
  };

  let outbox: DecisionChange[] = [];
  const sendOutbox = async () => {
    const changes = outbox;
    outbox = [];
    const payloads: string[] = [];
    for (let i = 0; i < changes.length; i += NOTIFY_BATCH) {
      payloads.push(JSON.stringify(changes.slice(i, i + NOTIFY_BATCH).map((c) => [c.id, c.status, c.eventId])));
    }
    try {
      await database.db.execute(
        sql`select pg_notify(${DECISIONS_CHANNEL}, payload) from jsonb_array_elements_text(${JSON.stringify(payloads)}::jsonb) as payload`,
      );
    } catch (error) {
      for (const change of changes) deliveredHere.delete(change.eventId);
      logger.warn("decision notifications not sent; other replicas learn of these changes late", {
        changes: changes.length,
        error: (error as Error).message,
      });
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
    announce(change, committed) {
      // Bounded: entries whose echo never comes (not listening, a dropped connection) would otherwise
      // pile up; the cost of clearing is one change delivered twice here, which listeners tolerate.
      if (deliveredHere.size >= 10_000) deliveredHere.clear();
      deliveredHere.add(change.eventId);
      deliver(change, committed);
      if (outbox.length === 0) setTimeout(() => void sendOutbox(), 0);
      outbox.push(change);
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
