-- Version 3: the blob key space and named locks (certmagic's storage).

-- Keys are slash-separated paths. Their "C" collation compares bytes, so
-- the keys below "a/b" are exactly those from 'a/b/' up to, not including,
-- 'a/b0' ('0' follows '/'), and prefix queries are range scans of the
-- primary key.
CREATE TABLE blobs (
	key      text COLLATE "C" PRIMARY KEY,
	value    bytea NOT NULL,
	modified leash_time NOT NULL
);

CREATE TABLE locks (
	name    text COLLATE "C" PRIMARY KEY,
	owner   text NOT NULL,
	expires leash_time NOT NULL
);
