/** The Arbiter SDK: `import { ArbiterClient, verifyWebhook } from "arbiter/sdk"`. */
export { ArbiterClient } from "./client";
export { MAX_POLL_SECONDS, verifyPayload, type WaitOptions } from "./decisions";
export { ArbiterError } from "./errors";
export { ReceiptError, type ReceiptErrorCode, type VerifiedReceipt, type VerifyReceiptOptions, verifyReceipt } from "./receipts";
export { MAX_BATCH } from "./telemetry";
export type { ClientOptions, FetchLike } from "./transport";
export type * from "./types";
export { type VerifyWebhookOptions, verifyWebhook } from "./webhooks";
