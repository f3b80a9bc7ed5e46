// Package sqlitestore is the single-file SQLite backend of store.Store, built
// on the pure-Go modernc.org/sqlite driver (no cgo).
//
// Open creates the database file with mode 0600 and refuses an existing
// file that group or others can read: it holds every issued certificate and
// the state of every enrollment token. Each connection runs in WAL mode with
// a 10 s busy timeout, foreign keys on and synchronous=NORMAL, and every
// explicit transaction begins IMMEDIATE, so several processes can share one
// file: writers queue on SQLite's lock instead of failing.
//
// The schema is versioned. Migrations are an ordered list of SQL scripts;
// version N is the first N scripts, recorded in schema_migrations, and each
// is applied in its own transaction that re-reads the version first, so two
// processes opening a fresh file at once migrate it exactly once. A database
// whose version is newer than this code knows is refused rather than
// guessed at (ErrSchemaTooNew).
//
// Times are stored as fixed-width UTC text with nine fractional digits
// (2006-01-02T15:04:05.000000000Z). The text sorts like the instants it
// names, round-trips to the nanosecond and covers years 0000 to 9999, which
// includes the RFC 5280 "no well-defined expiration" date 9999-12-31. A
// zero time in an optional column (a token's used_at, a revocation's
// expires_at) is stored as NULL.
//
// One-time tokens are spent with a single conditional UPDATE (used_at IS
// NULL AND revoked_at IS NULL); SQLite serialises writers, so of any number
// of concurrent spends, from any number of processes, exactly one changes
// the row. Revocations, certificates and tokens are inserted with ON
// CONFLICT DO NOTHING and the affected-row count decides between success and
// the ca package's sentinel errors.
//
// The blob key space (certmagic's storage) compares keys as bytes: the keys
// below a path are one range of the primary key, from "path/" up to
// "path0", so no LIKE pattern, whose wildcards a key could contain, is
// involved. TryLock is one upsert whose DO UPDATE applies only when the
// caller holds the lock or its expiry has passed; the affected-row count
// says whether it took the lock.
package sqlitestore
