CREATE TABLE "api_keys" (
	"id" uuid PRIMARY KEY NOT NULL,
	"key_hash" text NOT NULL,
	"display_prefix" text NOT NULL,
	"name" text NOT NULL,
	"role" text NOT NULL,
	"permissions" text[],
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_by" uuid,
	"rotated_from" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"last_used_at" timestamp with time zone,
	CONSTRAINT "api_keys_role_check" CHECK (role in ('admin', 'operator', 'readonly', 'service'))
);
--> statement-breakpoint
CREATE TABLE "auth_events" (
	"id" uuid PRIMARY KEY NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"actor_key_id" uuid,
	"action" text NOT NULL,
	"outcome" text NOT NULL,
	"reason" text,
	"target_id" text,
	"address" text,
	"user_agent" text,
	"request_id" text,
	CONSTRAINT "auth_events_outcome_check" CHECK (outcome in ('success', 'failure'))
);
--> statement-breakpoint
CREATE TABLE "decision_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "decision_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"decision_id" uuid NOT NULL,
	"type" text NOT NULL,
	"actor_key_id" uuid,
	"from_status" text,
	"to_status" text NOT NULL,
	"reason" text,
	"data" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "decisions" (
	"id" uuid PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"title" text NOT NULL,
	"payload" jsonb NOT NULL,
	"payload_hash" text NOT NULL,
	"context" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"priority" text DEFAULT 'medium' NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"escalation_level" smallint DEFAULT 0 NOT NULL,
	"required_approvals" smallint DEFAULT 1 NOT NULL,
	"approvals" uuid[] DEFAULT '{}'::uuid[] NOT NULL,
	"requester_key_id" uuid NOT NULL,
	"resolved_by" uuid,
	"resolution_reason" text,
	"approved_payload" jsonb,
	"approved_payload_hash" text,
	"on_timeout" text DEFAULT 'reject' NOT NULL,
	"callback_url" text,
	"idempotency_key" text,
	"request_hash" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"resolved_at" timestamp with time zone,
	"consumed_at" timestamp with time zone,
	CONSTRAINT "decisions_status_check" CHECK (status in ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
	CONSTRAINT "decisions_priority_check" CHECK (priority in ('low', 'medium', 'high', 'critical')),
	CONSTRAINT "decisions_on_timeout_check" CHECK (on_timeout in ('reject', 'approve', 'escalate')),
	CONSTRAINT "decisions_required_approvals_check" CHECK (required_approvals between 1 and 5)
);
--> statement-breakpoint
CREATE TABLE "operator_sessions" (
	"id" uuid PRIMARY KEY NOT NULL,
	"key_id" uuid NOT NULL,
	"permissions" text[] NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	"address" text,
	"user_agent" text
);
--> statement-breakpoint
CREATE TABLE "signing_keys" (
	"kid" text PRIMARY KEY NOT NULL,
	"alg" text NOT NULL,
	"private_jwk" jsonb NOT NULL,
	"public_jwk" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retired_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "telemetry_events" (
	"id" text PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"source" text NOT NULL,
	"severity" text NOT NULL,
	"occurred_at" timestamp with time zone NOT NULL,
	"attributes" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"trace_id" text,
	"ingested_by" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "telemetry_events_severity_check" CHECK (severity in ('debug', 'info', 'warn', 'error', 'critical'))
);
--> statement-breakpoint
CREATE TABLE "telemetry_snapshots" (
	"id" uuid PRIMARY KEY NOT NULL,
	"source" text NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"metrics" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "webhook_deliveries" (
	"id" uuid PRIMARY KEY NOT NULL,
	"decision_id" uuid NOT NULL,
	"url" text NOT NULL,
	"attempt" integer NOT NULL,
	"status_code" integer,
	"error" text,
	"delivered" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"next_attempt_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "decision_events" ADD CONSTRAINT "decision_events_decision_id_decisions_id_fk" FOREIGN KEY ("decision_id") REFERENCES "public"."decisions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "operator_sessions" ADD CONSTRAINT "operator_sessions_key_id_api_keys_id_fk" FOREIGN KEY ("key_id") REFERENCES "public"."api_keys"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_decision_id_decisions_id_fk" FOREIGN KEY ("decision_id") REFERENCES "public"."decisions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "api_keys_key_hash_key" ON "api_keys" USING btree ("key_hash");--> statement-breakpoint
CREATE INDEX "api_keys_created_at_id_idx" ON "api_keys" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "auth_events_created_at_id_idx" ON "auth_events" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "auth_events_actor_idx" ON "auth_events" USING btree ("actor_key_id","created_at");--> statement-breakpoint
CREATE INDEX "decision_events_decision_idx" ON "decision_events" USING btree ("decision_id","id");--> statement-breakpoint
CREATE INDEX "decisions_created_at_id_idx" ON "decisions" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "decisions_status_created_idx" ON "decisions" USING btree ("status","created_at","id");--> statement-breakpoint
CREATE INDEX "decisions_requester_created_idx" ON "decisions" USING btree ("requester_key_id","created_at","id");--> statement-breakpoint
CREATE INDEX "decisions_pending_expiry_idx" ON "decisions" USING btree ("expires_at") WHERE status = 'pending';--> statement-breakpoint
CREATE UNIQUE INDEX "decisions_idempotency_key" ON "decisions" USING btree ("requester_key_id","idempotency_key");--> statement-breakpoint
CREATE INDEX "operator_sessions_key_id_idx" ON "operator_sessions" USING btree ("key_id");--> statement-breakpoint
CREATE INDEX "operator_sessions_expires_at_idx" ON "operator_sessions" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "telemetry_events_source_occurred_idx" ON "telemetry_events" USING btree ("source","occurred_at");--> statement-breakpoint
CREATE INDEX "telemetry_events_type_occurred_idx" ON "telemetry_events" USING btree ("type","occurred_at");--> statement-breakpoint
CREATE INDEX "telemetry_events_created_at_id_idx" ON "telemetry_events" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "telemetry_events_occurred_brin" ON "telemetry_events" USING brin ("occurred_at");--> statement-breakpoint
CREATE INDEX "telemetry_snapshots_source_at_idx" ON "telemetry_snapshots" USING btree ("source","at");--> statement-breakpoint
CREATE INDEX "telemetry_snapshots_at_brin" ON "telemetry_snapshots" USING brin ("at");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_decision_idx" ON "webhook_deliveries" USING btree ("decision_id","attempt");--> statement-breakpoint
CREATE INDEX "webhook_deliveries_due_idx" ON "webhook_deliveries" USING btree ("next_attempt_at") WHERE next_attempt_at is not null;--> statement-breakpoint
CREATE VIEW "public"."pending_decisions" AS (select "id", "kind", "title", "priority", "escalation_level", "required_approvals", "requester_key_id", "created_at", "expires_at", case "priority" when 'critical' then 0 when 'high' then 1 when 'medium' then 2 else 3 end as "priority_rank" from "decisions" where "decisions"."status" = 'pending');