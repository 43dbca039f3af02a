/** The Arbiter SDK: `import { ArbiterClient, verifyReceipt, verifyWebhook } from "arbiter/sdk"`. */

export type { JSONWebKeySet } from "jose";
export { ArbiterClient } from "./client";
export {
  type ApprovalResult,
  MAX_POLL_SECONDS,
  type RequestApprovalOptions,
  verifyPayload,
  type WaitOptions,
  type WatchOptions,
} from "./decisions";
export { ArbiterError } from "./errors";
export { ReceiptError, type ReceiptErrorCode, type VerifiedReceipt, type VerifyReceiptOptions, verifyReceipt } from "./receipts";
export { MAX_BATCH } from "./telemetry";
export type { ClientOptions, FetchLike } from "./transport";
export type * from "./types";
export { type VerifyWebhookOptions, verifyWebhook } from "./webhooks";
