-- Notification routes can be limited to decisions an enforced policy rule sent to people (outcome require).
ALTER TABLE "notification_routes" ADD COLUMN "policy_outcome" text;--> statement-breakpoint
ALTER TABLE "notification_routes" ADD CONSTRAINT "notification_routes_policy_outcome_check" CHECK (policy_outcome is null or policy_outcome = 'require');