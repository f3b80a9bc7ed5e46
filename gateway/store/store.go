package store

import (
	"context"
	"errors"
	"time"

	"github.com/leashpki/leash/ca"
)

// Store is a storage backend for the gateway.
type Store interface {
	ca.Store
	Runners
	Jobs
	Events
	Audit
	Blobs
	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the backend's connections; the store must not be
	// used afterwards.
	Close() error
}

// Sentinel errors; match with errors.Is. ErrNotFound and ErrExists are the
// ca package's, so one check covers every record kind.
var (
	ErrNotFound = ca.ErrNotFound
	ErrExists   = ca.ErrExists
	// ErrConflict means the record exists but is not in a state that allows
	// the change: a result for a job that belongs to another runner or is
	// already finished.
	ErrConflict = errors.New("conflict")
)

// RunnerRecord is one registered runner.
type RunnerRecord struct {
	ID           string // the runner id from its certificate
	Status       string // protocol.RunnerOnline, RunnerOffline, RunnerRevoked
	Hostname     string
	OS           string
	Arch         string
	Version      string
	Labels       map[string]string
	Capabilities []string
	CertSerial   string
	CertNotAfter time.Time
	FirstSeen    time.Time
	LastSeen     time.Time
	Load1        float64
	MemUsed      uint64
	MemTotal     uint64
}

// RunnerQuery filters Runners. Zero values match everything.
type RunnerQuery struct {
	Status string
	Limit  int
}

// HeartbeatRecord is one heartbeat.
type HeartbeatRecord struct {
	RunnerID     string
	At           time.Time
	Load1        float64
	MemUsed      uint64
	MemTotal     uint64
	CertSerial   string // serial of the certificate the heartbeat came with
	CertNotAfter time.Time
}

// Runners holds runner registrations.
type Runners interface {
	// RegisterRunner inserts or updates a runner from its registration:
	// host facts, labels, capabilities and certificate are replaced,
	// FirstSeen is kept when the runner exists, LastSeen is set and Status
	// becomes online (the TLS layer has already refused revoked
	// certificates, so a registration always comes with a valid one). It
	// returns the previous status ("" for a new runner).
	RegisterRunner(ctx context.Context, r RunnerRecord) (previous string, err error)
	// Heartbeat updates LastSeen and the vital signs. It returns the
	// previous status, ErrNotFound for a runner that never registered and
	// ErrConflict for a revoked one. An offline runner becomes online.
	Heartbeat(ctx context.Context, h HeartbeatRecord) (previous string, err error)
	// Runner returns one runner or ErrNotFound.
	Runner(ctx context.Context, id string) (RunnerRecord, error)
	// Runners lists runners ordered by id.
	Runners(ctx context.Context, q RunnerQuery) ([]RunnerRecord, error)
	// MarkOffline sets every online runner whose LastSeen is before
	// cutoff offline and returns their ids. Of concurrent calls (from
	// several replicas) each runner is reported by exactly one.
	MarkOffline(ctx context.Context, cutoff time.Time) ([]string, error)
	// SetRunnerStatus sets a runner's status (used for revoked).
	SetRunnerStatus(ctx context.Context, id, status string) error
}

// JobRecord is one job addressed to one runner.
type JobRecord struct {
	ID          string
	Runner      string
	Kind        string
	Command     string
	Timeout     time.Duration
	State       string // protocol.JobQueued, JobRunning, JobSucceeded, JobFailed
	Attempts    int    // claims so far
	SubmittedBy string
	CreatedAt   time.Time
	ClaimedAt   time.Time // last claim; zero while never claimed
	LeaseUntil  time.Time // zero unless running
	FinishedAt  time.Time
	Result      []byte // protocol.JobResult as JSON, once finished
}

// JobQuery filters Jobs. Zero values match everything.
type JobQuery struct {
	Runner string
	State  string
	Limit  int
}

// Jobs is the job queue. Delivery is at least once: a claimed job whose
// lease runs out before its result arrives is claimable again.
type Jobs interface {
	// SubmitJob stores a queued job (ErrExists for a duplicate id) and
	// wakes the runner's long-pollers on every gateway sharing the store.
	SubmitJob(ctx context.Context, j JobRecord) error
	// ClaimJob hands the oldest claimable job of runner to it: a queued
	// job, or a running one whose lease ended before now. The job becomes
	// running with LeaseUntil = leaseUntil and Attempts+1. ErrNotFound when
	// there is none. Of concurrent claims each job goes to exactly one.
	ClaimJob(ctx context.Context, runner string, now, leaseUntil time.Time) (JobRecord, error)
	// FinishJob records a result. The job must belong to runner
	// (ErrConflict otherwise, and for a job already finished) and exist
	// (ErrNotFound). state is protocol.JobSucceeded or JobFailed.
	FinishJob(ctx context.Context, id, runner, state string, result []byte, at time.Time) error
	// Job returns one job or ErrNotFound.
	Job(ctx context.Context, id string) (JobRecord, error)
	// Jobs lists jobs newest first.
	Jobs(ctx context.Context, q JobQuery) ([]JobRecord, error)
	// JobSignals delivers the runner id of every job submitted through
	// any store sharing this database, until ctx ends. Delivery is best
	// effort (a slow reader may miss signals): pollers also re-check on a
	// timer. The channel is closed when ctx ends.
	JobSignals(ctx context.Context) (<-chan string, error)
}

// EventRecord is one stored runner event.
type EventRecord struct {
	Seq      int64 // assigned by the store, increasing
	RunnerID string
	Time     time.Time
	Kind     string
	Level    string
	JobID    string
	Stream   string
	Message  string
	Data     string
}

// EventQuery filters Events. Zero values match everything.
type EventQuery struct {
	RunnerID string
	JobID    string
	AfterSeq int64
	Limit    int
}

// Events holds runner events with bounded retention.
type Events interface {
	// AppendEvents stores events in order, all or none.
	AppendEvents(ctx context.Context, events []EventRecord) error
	// Events lists events oldest first.
	Events(ctx context.Context, q EventQuery) ([]EventRecord, error)
	// PruneEvents deletes events older than before and, per runner, all
	// but the newest keepPerRunner (0 = no count limit). It returns how
	// many it deleted.
	PruneEvents(ctx context.Context, before time.Time, keepPerRunner int) (int, error)
}

// AuditRecord is one audit log row.
type AuditRecord struct {
	Seq    int64 // assigned by the store
	Time   time.Time
	Actor  string // identity URI (leash://operator/alice), "gateway" or "cli"
	Action string // enroll, renew, revoke, register, online, offline, job.submit, job.claim, job.finish
	Target string // runner id, job id or serial
	Detail string // short human text or JSON
}

// AuditQuery filters Audit. Zero values match everything.
type AuditQuery struct {
	Action string
	Target string
	Limit  int
}

// Audit is the append-only audit log.
type Audit interface {
	AppendAudit(ctx context.Context, r AuditRecord) error
	// AuditLog lists rows newest first.
	AuditLog(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
}

// BlobRecord is one value of the Blobs key space.
type BlobRecord struct {
	Key      string
	Value    []byte
	Modified time.Time
}

// Blobs is a small key-value space with named, expiring locks, shared by
// every gateway replica on the store. It keeps what certmagic keeps on
// disk elsewhere (the gateway's own server certificates and keys, their
// metadata), so that replicas share one certificate and never renew it
// twice at once. Keys are slash-separated paths ("certificates/ca/x.crt").
type Blobs interface {
	// PutBlob creates or replaces key.
	PutBlob(ctx context.Context, r BlobRecord) error
	// Blob returns key, or ErrNotFound.
	Blob(ctx context.Context, key string) (BlobRecord, error)
	// DeleteBlob deletes key and every key below it (key + "/..."); it
	// returns ErrNotFound when nothing was deleted.
	DeleteBlob(ctx context.Context, key string) error
	// ListBlobs lists the keys below prefix, sorted. Recursive lists every
	// key; otherwise only the direct children of prefix, where a child
	// with keys below it is listed once, as a "directory" path.
	ListBlobs(ctx context.Context, prefix string, recursive bool) ([]string, error)
	// TryLock takes lock name for owner until expires, and reports false
	// when another owner holds it and its expiry has not passed (now is the
	// caller's clock). Taking a lock one already holds extends it.
	TryLock(ctx context.Context, name, owner string, now, expires time.Time) (bool, error)
	// Unlock releases name if owner holds it; otherwise it returns
	// ErrConflict (ErrNotFound when nobody holds it).
	Unlock(ctx context.Context, name, owner string) error
}
