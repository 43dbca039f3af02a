-- People: operators own keys; quorum counts people.
CREATE TABLE "operators" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"email" text,
	"slack_user_id" text,
	"role" text NOT NULL,
	"created_by" uuid,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"disabled_at" timestamp (3) with time zone,
	CONSTRAINT "operators_role_check" CHECK (role in ('admin', 'operator', 'readonly', 'service'))
);
--> statement-breakpoint
ALTER TABLE "api_keys" ADD COLUMN "operator_id" uuid;--> statement-breakpoint
ALTER TABLE "decisions" ADD COLUMN "approver_people" uuid[] DEFAULT '{}'::uuid[] NOT NULL;--> statement-breakpoint
ALTER TABLE "decisions" ADD COLUMN "requester_person_id" uuid;--> statement-breakpoint
-- Existing keys held by people (every role but service) become one person each, with the key's id,
-- so approvals already recorded (key ids) are already person ids. An admin can then give several
-- keys of one person to the same operator record.
INSERT INTO "operators" ("id", "name", "role", "created_at", "updated_at", "disabled_at")
  SELECT "id", "name", "role", "created_at", "created_at", NULL FROM "api_keys" WHERE "role" <> 'service';--> statement-breakpoint
UPDATE "api_keys" SET "operator_id" = "id" WHERE "role" <> 'service';--> statement-breakpoint
UPDATE "decisions" SET "requester_person_id" = "requester_key_id", "approver_people" = "approvals";--> statement-breakpoint
ALTER TABLE "decisions" ALTER COLUMN "requester_person_id" SET NOT NULL;--> statement-breakpoint
CREATE INDEX "operators_created_at_id_idx" ON "operators" USING btree ("created_at","id");--> statement-breakpoint
CREATE UNIQUE INDEX "operators_email_key" ON "operators" USING btree ("email");--> statement-breakpoint
CREATE UNIQUE INDEX "operators_slack_user_id_key" ON "operators" USING btree ("slack_user_id");--> statement-breakpoint
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_operator_id_operators_id_fk" FOREIGN KEY ("operator_id") REFERENCES "public"."operators"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "api_keys_operator_id_idx" ON "api_keys" USING btree ("operator_id");