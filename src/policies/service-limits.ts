/** The most decisions one replay or preview evaluates (the newest in its range). */
export const REPLAY_MAX_DECISIONS = 10_000;
