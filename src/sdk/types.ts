import type { z } from "@hono/zod-openapi";
import type {
  CreatedKeySchema,
  CreateKeyBody,
  IssueTokenBody,
  KeySchema,
  ListKeysQuery,
  RevokedTokenSchema,
  RotatedKeySchema,
  RotateKeyBody,
  ServiceTokenSchema,
} from "../auth/routes";
import type {
  ApproveBody,
  CreateDecisionBody,
  DecisionEventSchema,
  DecisionSchema,
  ListQuery,
  QueueItemSchema,
  ReasonBody,
  ReceiptClaimsSchema,
  ReceiptSchema,
} from "../decisions/schemas";
import type { CreateRouteBody, NotificationDeliverySchema, NotificationRouteSchema, UpdateRouteBody } from "../notify/routes";
import type { CreateOperatorBody, DisabledOperatorSchema, ListOperatorsQuery, OperatorSchema, UpdateOperatorBody } from "../people/routes";
import type { CreatePolicyBody, PolicySchema, PreviewBody, ReplayResult, UpdatePolicyBody } from "../policies/schemas";
import type { Snapshot, SnapshotInput, TelemetryBatchAccepted, TelemetryEventInput } from "../telemetry/schemas";

/**
 * The SDK's request and response types, derived from the API's own zod schemas (type-only imports:
 * nothing of the server is bundled). Requests use the schemas' input side (defaults optional),
 * responses their output side.
 */

/** Query values as a caller writes them: the schemas coerce strings, so numbers and Dates are fine too. */
type QueryOf<T> = { [K in keyof T]?: T[K] extends Date | undefined ? Date | string : T[K] extends number | undefined ? number : T[K] };
type PageQuery<Schema extends z.ZodTypeAny> = Omit<QueryOf<z.output<Schema>>, "cursor" | "limit"> & { limit?: number; cursor?: string };

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

export type Decision = z.output<typeof DecisionSchema>;
export type DecisionStatus = Decision["status"];
export type QueuedDecision = z.output<typeof QueueItemSchema>;
export type CreateDecisionRequest = z.input<typeof CreateDecisionBody>;
export type ApproveRequest = z.input<typeof ApproveBody>;
export type ReasonRequest = z.input<typeof ReasonBody>;
export type ListDecisionsQuery = PageQuery<typeof ListQuery>;
export type DecisionEvent = z.output<typeof DecisionEventSchema>;
export type DecisionReceipt = z.output<typeof ReceiptSchema>;
export type ReceiptClaims = z.output<typeof ReceiptClaimsSchema>;
export type PaginationOptions = { limit?: number; cursor?: string };

/** An event to send; `occurred_at` may be a Date (sent as ISO 8601). */
export type TelemetryEventRequest = Omit<z.input<typeof TelemetryEventInput>, "occurred_at"> & { occurred_at: string | Date };
export type TelemetryBatchResult = z.output<typeof TelemetryBatchAccepted>;
export type SnapshotRequest = Omit<z.input<typeof SnapshotInput>, "at"> & { at?: string | Date };
export type TelemetrySnapshot = z.output<typeof Snapshot>;

export type ApiKey = z.output<typeof KeySchema>;
export type CreatedApiKey = z.output<typeof CreatedKeySchema>;
export type RotatedApiKey = z.output<typeof RotatedKeySchema>;
export type CreateKeyRequest = z.input<typeof CreateKeyBody>;
export type RotateKeyRequest = z.input<typeof RotateKeyBody>;
export type ListKeysOptions = PageQuery<typeof ListKeysQuery>;
export type IssueTokenRequest = z.input<typeof IssueTokenBody>;
export type ServiceToken = z.output<typeof ServiceTokenSchema>;
export type RevokedToken = z.output<typeof RevokedTokenSchema>;

export type Operator = z.output<typeof OperatorSchema>;
export type DisabledOperator = z.output<typeof DisabledOperatorSchema>;
export type CreateOperatorRequest = z.input<typeof CreateOperatorBody>;
export type UpdateOperatorRequest = z.input<typeof UpdateOperatorBody>;
export type ListOperatorsOptions = PageQuery<typeof ListOperatorsQuery>;

export type NotificationRoute = z.output<typeof NotificationRouteSchema>;
export type NotificationDelivery = z.output<typeof NotificationDeliverySchema>;
export type CreateNotificationRouteRequest = z.input<typeof CreateRouteBody>;
export type UpdateNotificationRouteRequest = z.input<typeof UpdateRouteBody>;

export type Policy = z.output<typeof PolicySchema>;
export type PolicyOutcome = Policy["outcome"];
export type PolicyState = Policy["state"];
export type CreatePolicyRequest = z.input<typeof CreatePolicyBody>;
export type UpdatePolicyRequest = z.input<typeof UpdatePolicyBody>;
/** A time range of past decisions: ISO strings or Dates. */
export interface ReplayRequest {
  from: string | Date;
  to?: string | Date;
  limit?: number;
}
export type PreviewRequest = Omit<z.input<typeof PreviewBody>, "from" | "to"> & ReplayRequest;
export type PolicyReplay = z.output<typeof ReplayResult>;
