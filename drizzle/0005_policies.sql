CREATE TABLE "policies" (
	"id" uuid PRIMARY KEY NOT NULL,
	"version" integer NOT NULL,
	"name" text NOT NULL,
	"description" text,
	"expression" text NOT NULL,
	"outcome" text NOT NULL,
	"state" text NOT NULL,
	"position" integer NOT NULL,
	"reason" text,
	"required_approvals" smallint,
	"priority" text,
	"confirm_broad" boolean DEFAULT false NOT NULL,
	"created_by" uuid,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"deleted_at" timestamp (3) with time zone,
	"deleted_by" uuid,
	CONSTRAINT "policies_outcome_check" CHECK (outcome in ('approve', 'deny', 'require')),
	CONSTRAINT "policies_state_check" CHECK (state in ('enforce', 'shadow', 'disabled'))
);
--> statement-breakpoint
CREATE TABLE "policy_versions" (
	"policy_id" uuid NOT NULL,
	"version" integer NOT NULL,
	"name" text NOT NULL,
	"description" text,
	"expression" text NOT NULL,
	"outcome" text NOT NULL,
	"state" text NOT NULL,
	"position" integer NOT NULL,
	"reason" text,
	"required_approvals" smallint,
	"priority" text,
	"confirm_broad" boolean DEFAULT false NOT NULL,
	"created_by" uuid,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "policy_versions_policy_id_version_pk" PRIMARY KEY("policy_id","version")
);
--> statement-breakpoint
ALTER TABLE "decisions" ADD COLUMN "decided_by" text;--> statement-breakpoint
ALTER TABLE "decisions" ADD COLUMN "policy_id" uuid;--> statement-breakpoint
ALTER TABLE "decisions" ADD COLUMN "policy_version" integer;--> statement-breakpoint
ALTER TABLE "decisions" ADD COLUMN "policy_evaluation" jsonb;--> statement-breakpoint
ALTER TABLE "policy_versions" ADD CONSTRAINT "policy_versions_policy_id_policies_id_fk" FOREIGN KEY ("policy_id") REFERENCES "public"."policies"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "policies_position_idx" ON "policies" USING btree ("position","id") WHERE deleted_at is null;--> statement-breakpoint
CREATE INDEX "decisions_policy_created_idx" ON "decisions" USING btree ("policy_id","created_at") WHERE policy_id is not null;--> statement-breakpoint
ALTER TABLE "decisions" ADD CONSTRAINT "decisions_decided_by_check" CHECK (decided_by in ('human', 'policy', 'timeout'));--> statement-breakpoint
-- Who decided the decisions resolved before policies existed: people when a key resolved them, the
-- on_timeout default when none did. Pending and cancelled decisions stay null.
UPDATE "decisions" SET "decided_by" = CASE WHEN "resolved_by" IS NOT NULL THEN 'human' ELSE 'timeout' END
WHERE "status" IN ('approved', 'rejected', 'expired');--> statement-breakpoint
-- A policy version is immutable: an edit is a new version, so a decision's (policy_id, policy_version)
-- always names the rule exactly as it was applied.
CREATE FUNCTION "policy_versions_immutable"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'policy versions are immutable: save a new version instead' USING ERRCODE = 'insufficient_privilege';
END $$;--> statement-breakpoint
CREATE TRIGGER "policy_versions_immutable" BEFORE UPDATE OR DELETE ON "policy_versions"
FOR EACH ROW EXECUTE FUNCTION "policy_versions_immutable"();
