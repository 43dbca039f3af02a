CREATE TABLE "policy_generation" (
	"id" smallint PRIMARY KEY NOT NULL,
	"generation" bigint NOT NULL
);
--> statement-breakpoint
INSERT INTO "policy_generation" ("id", "generation") VALUES (1, 1);--> statement-breakpoint
-- Any write to the policies, by the API or by hand, raises the generation in the same transaction:
-- decisions are stored only under the generation their rules were read at (src/policies/in-force.ts).
CREATE FUNCTION "policy_generation_raise"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "policy_generation" SET "generation" = "generation" + 1 WHERE "id" = 1;
  RETURN NULL;
END $$;--> statement-breakpoint
CREATE TRIGGER "policy_generation_raise" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "policies"
FOR EACH STATEMENT EXECUTE FUNCTION "policy_generation_raise"();
