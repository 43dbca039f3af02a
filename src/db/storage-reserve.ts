/**
 * A free-space reserve for the embedded database. PGlite writes its WAL in 16 MiB segments under
 * the data directory; when the disk is so full that a new segment cannot be created, PGlite 0.5
 * blocks the whole process instead of failing the statement (a full disk otherwise only fails the
 * statement with disk_full). Refusing writes while less than the reserve is free keeps that room,
 * and the answer is the same 503 insufficient_storage a full disk gets.
 */
export class StorageReserveError extends Error {
  override name = "StorageReserveError";
  /** recognised by isStorageFull (src/db/errors.ts) */
  readonly code = "STORAGE_RESERVE";
}

/** Free space is read at most this often: a statfs per write would be wasted on a disk that fills over minutes. */
const RECHECK_MS = 1_000;

export function storageReserve(options: { freeBytes: () => number; minFreeBytes: number; now?: () => number }) {
  const now = options.now ?? (() => performance.now());
  let checkedAt = Number.NEGATIVE_INFINITY;
  let free = Number.POSITIVE_INFINITY;
  return {
    /** throws StorageReserveError while less than the reserve is free */
    check(): void {
      if (now() - checkedAt >= RECHECK_MS) {
        checkedAt = now();
        try {
          free = options.freeBytes();
        } catch {
          // Unreadable (the directory moved away): the database's own errors will say what is wrong.
          free = Number.POSITIVE_INFINITY;
        }
      }
      if (free < options.minFreeBytes) {
        const mib = (bytes: number) => Math.floor(bytes / 2 ** 20);
        throw new StorageReserveError(`${mib(free)} MiB free under the data directory, below the ${mib(options.minFreeBytes)} MiB reserve`);
      }
    },
  };
}
