-- Successful authentications are counted per key and minute instead of one audit row each.
CREATE TABLE "api_key_usage" (
	"key_id" uuid NOT NULL,
	"window_start" timestamp (3) with time zone NOT NULL,
	"via" text NOT NULL,
	"requests" bigint NOT NULL,
	CONSTRAINT "api_key_usage_key_id_window_start_via_pk" PRIMARY KEY("key_id","window_start","via"),
	CONSTRAINT "api_key_usage_via_check" CHECK (via in ('api_key', 'token'))
);
