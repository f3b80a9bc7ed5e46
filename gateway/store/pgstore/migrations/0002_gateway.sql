-- Version 2: runner registrations, the job queue, events and the audit log.

CREATE TABLE runners (
	id             text COLLATE "C" PRIMARY KEY,
	status         text NOT NULL,
	hostname       text NOT NULL,
	os             text NOT NULL,
	arch           text NOT NULL,
	version        text NOT NULL,
	labels         jsonb NOT NULL DEFAULT '{}', -- object of strings
	capabilities   text[] NOT NULL DEFAULT '{}',
	cert_serial    text NOT NULL,
	cert_not_after leash_time,
	first_seen     leash_time NOT NULL,
	last_seen      leash_time NOT NULL,
	load1          double precision NOT NULL DEFAULT 0,
	mem_used       bigint NOT NULL DEFAULT 0, -- a uint64's bits
	mem_total      bigint NOT NULL DEFAULT 0
);
CREATE INDEX runners_status_last_seen ON runners (status, last_seen);

CREATE TABLE jobs (
	id           text COLLATE "C" PRIMARY KEY,
	runner       text NOT NULL,
	kind         text NOT NULL,
	command      text NOT NULL DEFAULT '',
	timeout_ns   bigint NOT NULL DEFAULT 0,
	state        text NOT NULL,
	attempts     integer NOT NULL DEFAULT 0,
	submitted_by text NOT NULL DEFAULT '',
	created_at   leash_time NOT NULL,
	claimed_at   leash_time,
	lease_until  leash_time,
	finished_at  leash_time,
	result       bytea
);
CREATE INDEX jobs_runner_state ON jobs (runner, state, created_at, id);
CREATE INDEX jobs_created_at ON jobs (created_at, id);

CREATE TABLE events (
	seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	runner_id text NOT NULL,
	time      leash_time NOT NULL,
	kind      text NOT NULL,
	level     text NOT NULL DEFAULT '',
	job_id    text NOT NULL DEFAULT '',
	stream    text NOT NULL DEFAULT '',
	message   text NOT NULL DEFAULT '',
	data      text NOT NULL DEFAULT ''
);
CREATE INDEX events_runner_seq ON events (runner_id, seq);
CREATE INDEX events_job_seq ON events (job_id, seq);
CREATE INDEX events_time ON events (time);

CREATE TABLE audit (
	seq    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time   leash_time NOT NULL,
	actor  text NOT NULL,
	action text NOT NULL,
	target text NOT NULL DEFAULT '',
	detail text NOT NULL DEFAULT ''
);
CREATE INDEX audit_action ON audit (action, seq);
CREATE INDEX audit_target ON audit (target, seq);
