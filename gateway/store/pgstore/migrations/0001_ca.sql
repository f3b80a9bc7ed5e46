-- Version 1: the certificate authority's records.

-- Every time is fixed-width UTC text with nine fractional digits. The domain
-- refuses anything else, and its "C" collation compares bytes, so text order
-- is time order whatever the database's locale.
CREATE DOMAIN leash_time AS text COLLATE "C"
	CHECK (VALUE ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z$');

CREATE TABLE certificates (
	serial     text COLLATE "C" PRIMARY KEY, -- decimal
	profile    text NOT NULL,
	subject    text NOT NULL,
	sans       text[] NOT NULL DEFAULT '{}', -- DNS names, IPs, URIs, in order
	not_before leash_time NOT NULL,
	not_after  leash_time NOT NULL,
	issued_at  leash_time NOT NULL,
	der        bytea NOT NULL
);
CREATE INDEX certificates_issued_at ON certificates (issued_at, serial);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_subject ON certificates (subject);

-- A revocation may name a serial this store never issued, so no foreign key.
CREATE TABLE revocations (
	serial      text COLLATE "C" PRIMARY KEY,
	reason_code integer NOT NULL,
	reason      text NOT NULL,
	revoked_at  leash_time NOT NULL,
	expires_at  leash_time
);
CREATE INDEX revocations_revoked_at ON revocations (revoked_at, serial);

-- The token string is never stored: only its id (the JWT jti).
CREATE TABLE tokens (
	id          text COLLATE "C" PRIMARY KEY,
	kind        text NOT NULL,
	profile     text NOT NULL,
	subject     text NOT NULL,
	created_at  leash_time NOT NULL,
	expires_at  leash_time NOT NULL,
	used_at     leash_time,
	revoked_at  leash_time,
	cert_serial text
);
CREATE INDEX tokens_created_at ON tokens (created_at, id);
CREATE INDEX tokens_subject ON tokens (subject);

CREATE TABLE crls (
	number      bigint PRIMARY KEY CHECK (number >= 0),
	this_update leash_time NOT NULL,
	next_update leash_time NOT NULL,
	duration_ns bigint NOT NULL,
	der         bytea NOT NULL
);
