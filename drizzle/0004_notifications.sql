-- Notifications: routes, the outbox and its dispatcher cursor, single-use email links, escalation deadlines.
CREATE TABLE "email_action_uses" (
	"link_id" uuid PRIMARY KEY NOT NULL,
	"decision_id" uuid NOT NULL,
	"operator_id" uuid NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "notification_cursor" (
	"id" smallint PRIMARY KEY NOT NULL,
	"last_event_id" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "notification_deliveries" (
	"id" uuid PRIMARY KEY NOT NULL,
	"decision_id" uuid NOT NULL,
	"route_id" uuid,
	"event_id" bigint NOT NULL,
	"channel" text NOT NULL,
	"target" text NOT NULL,
	"operator_id" uuid,
	"purpose" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"next_attempt_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"locked_until" timestamp (3) with time zone,
	"last_error" text,
	"external_ref" jsonb,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"sent_at" timestamp (3) with time zone,
	CONSTRAINT "notification_deliveries_channel_check" CHECK (channel in ('slack', 'email')),
	CONSTRAINT "notification_deliveries_status_check" CHECK (status in ('pending', 'sent', 'skipped', 'failed'))
);
--> statement-breakpoint
CREATE TABLE "notification_routes" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"kinds" text[],
	"min_priority" text,
	"level" smallint DEFAULT 0 NOT NULL,
	"targets" jsonb NOT NULL,
	"escalate_after_seconds" integer,
	"enabled" boolean DEFAULT true NOT NULL,
	"created_by" uuid,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "notification_routes_min_priority_check" CHECK (min_priority is null or min_priority in ('low', 'medium', 'high', 'critical')),
	CONSTRAINT "notification_routes_level_check" CHECK (level between 0 and 3),
	CONSTRAINT "notification_routes_escalate_after_check" CHECK (escalate_after_seconds is null or escalate_after_seconds between 10 and 2592000)
);
--> statement-breakpoint
ALTER TABLE "decisions" ADD COLUMN "escalate_after_seconds" integer;--> statement-breakpoint
ALTER TABLE "decisions" ADD COLUMN "escalated_at" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "notification_deliveries" ADD CONSTRAINT "notification_deliveries_decision_id_decisions_id_fk" FOREIGN KEY ("decision_id") REFERENCES "public"."decisions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "notification_deliveries" ADD CONSTRAINT "notification_deliveries_route_id_notification_routes_id_fk" FOREIGN KEY ("route_id") REFERENCES "public"."notification_routes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "notification_deliveries_once" ON "notification_deliveries" USING btree ("event_id","channel","target","purpose");--> statement-breakpoint
CREATE INDEX "notification_deliveries_decision_idx" ON "notification_deliveries" USING btree ("decision_id","created_at");--> statement-breakpoint
CREATE INDEX "notification_deliveries_due_idx" ON "notification_deliveries" USING btree ("next_attempt_at") WHERE status = 'pending';--> statement-breakpoint
CREATE INDEX "notification_routes_level_idx" ON "notification_routes" USING btree ("level");--> statement-breakpoint
-- An upgraded database starts notifying from now: decisions already in its audit trail are not announced
-- again. A new one has no row (and no application rows to restore over); its dispatcher starts at its first event.
INSERT INTO "notification_cursor" ("id", "last_event_id") SELECT 1, max("id") FROM "decision_events" HAVING count(*) > 0;
