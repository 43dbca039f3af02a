/**
 * Fresh reads of one decision shared by the long-polls that ask for it together. A waiter must read
 * the decision after it registered for notifications (a change committed before the read is seen by
 * the read, one after it wakes the waiter), so a read may serve only waiters that joined before it
 * started. Reads of one id therefore run one after another: those who ask while a read is running
 * share the next one, which starts when it ends. 5,000 waiters on one decision then cost a handful
 * of reads instead of 5,000 queued on the pool ahead of the approval they wait for.
 */
export function createSharedReads<T>(load: (id: string) => Promise<T>): (id: string) => Promise<T> {
  /** the read that will start next for an id, which newcomers join */
  const joining = new Map<string, Promise<T>>();
  /** the read running for an id */
  const running = new Map<string, Promise<unknown>>();
  return (id) => {
    const open = joining.get(id);
    if (open) return open;
    const before = running.get(id) ?? Promise.resolve();
    const next = before
      .catch(() => undefined)
      .then(() => {
        // From here on, newcomers form the following read.
        joining.delete(id);
        const read = load(id);
        running.set(id, read);
        void read
          .catch(() => undefined)
          .finally(() => {
            if (running.get(id) === read) running.delete(id);
          });
        return read;
      });
    joining.set(id, next);
    return next;
  };
}
