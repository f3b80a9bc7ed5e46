// Package pgstore is the PostgreSQL backend of store.Store, for several
// gateway replicas sharing one database. It is built on pgx and a pgxpool
// connection pool, and has the same semantics as sqlitestore: both pass the
// storetest conformance suite.
//
// # Schema and migrations
//
// The schema is versioned. The scripts in migrations/ (embedded) are
// numbered 0001, 0002, ...; version N is the first N, recorded in
// schema_migrations. Open applies the missing ones in a single transaction
// that first takes a transaction-scoped advisory lock, so of two gateways
// starting at once on an empty database one migrates and the other waits,
// then finds the work done. PostgreSQL's DDL is transactional: a failed
// script leaves the schema as it was. A database whose version is newer
// than this code knows is refused (ErrSchemaTooNew).
//
// The tables are those of sqlitestore: certificates, revocations, tokens and
// crls for the CA; runners, jobs, events and audit for the gateway; blobs
// and locks for certmagic's storage. SANs and capabilities are text[] and
// labels jsonb; certificates, CRLs, job results and blob values are bytea.
//
// # Time
//
// A timestamptz holds microseconds and the store must return every time
// equal to the nanosecond; a bigint of Unix nanoseconds ends in 2262, short
// of RFC 5280's 9999-12-31 "no well-defined expiration". So times are
// stored as sqlitestore stores them: fixed-width UTC text with nine
// fractional digits (2006-01-02T15:04:05.000000000Z), in the domain
// leash_time, which checks that form and compares with the "C" collation.
// The text then sorts like the instants it names, whatever the database's
// locale, and round-trips exactly. A zero time in an optional column is
// NULL. Identifiers that lists are ordered by (serials, token, runner and job
// ids) are also "C", so that lists come out in byte order, as from SQLite.
//
// # Concurrency
//
// Every statement runs at READ COMMITTED, which Open sets for its sessions
// whatever the server's default; what must happen once happens in one
// statement or under a row lock:
//
//   - Certificates, revocations, tokens and jobs are inserted with ON
//     CONFLICT DO NOTHING; the affected-row count decides between success
//     and the sentinel errors (ca.ErrExists, ca.ErrAlreadyRevoked).
//   - A token is spent (or revoked) by one conditional UPDATE ... WHERE
//     used_at IS NULL AND revoked_at IS NULL. A concurrent UPDATE of the same
//     row waits for the first to commit and re-checks the condition on the
//     new row, so of any number of spends, from any number of gateways,
//     exactly one changes it.
//   - ClaimJob is one UPDATE of the row picked by SELECT ... FOR UPDATE SKIP
//     LOCKED: concurrent claims take different jobs instead of queueing on
//     one. A running job whose lease has ended is claimable again.
//   - MarkOffline is one UPDATE ... RETURNING of rows locked in id order;
//     a runner another replica has just marked no longer matches, so each
//     is reported once.
//   - RegisterRunner, Heartbeat and FinishJob read and change a row they
//     hold locked (SELECT ... FOR UPDATE), so the previous status they
//     return is the one they replaced.
//   - PutCRL locks the crls table against other writers for its check and
//     insert, so CRL numbers only grow.
//   - TryLock is one INSERT ... ON CONFLICT DO UPDATE ... WHERE the holder
//     is the caller or its expiry has passed, RETURNING a row only when it
//     took the lock. Concurrent inserts of one name wait for the first to
//     commit and then see its row, so exactly one caller takes a lock.
//   - Blob keys are "C" text, so the keys below a path are one range of the
//     primary key (from "path/" up to "path0"); no LIKE pattern, whose
//     wildcards a key could contain, is involved.
//   - AppendEvents holds an advisory lock until it commits, so that event
//     sequence numbers become visible in order: a reader paging with
//     AfterSeq never sees a number before a lower one that commits later.
//
// # Job signals
//
// SubmitJob sends pg_notify('leash_jobs', runner id) in the transaction
// that inserts the job; PostgreSQL delivers it at commit to every session
// listening, on any replica. JobSignals opens a dedicated connection (not
// from the pool) that runs LISTEN leash_jobs and relays each notification's
// payload, the runner id, as sqlitestore relays in-process submissions. A
// lost connection is re-established with backoff; notifications sent while
// it was down are lost, which store.Jobs allows (pollers re-check on a
// timer). Because of LISTEN, the store needs session-level connections: a
// pooler in transaction mode (PgBouncer's pool_mode=transaction) will not
// do.
//
// Open takes any connection string pgx accepts, including pool settings
// such as pool_max_conns. Objects are created in the connection's current
// schema (the first on its search_path).
package pgstore
