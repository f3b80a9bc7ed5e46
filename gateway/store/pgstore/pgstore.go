package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leashpki/leash/gateway/store"
)

// Store is a store.Store backed by a PostgreSQL database. It is safe for
// concurrent use; several Stores, in one process or many, may share a
// database.
type Store struct {
	pool   *pgxpool.Pool
	listen *pgx.ConnConfig // template for JobSignals' connections
	name   string          // the database, without credentials, for messages
	log    *slog.Logger

	// mu guards closed and the Add of subs, so that Close's Wait never
	// races a new subscription.
	mu      sync.Mutex
	closed  bool
	closing context.Context // ends when Close begins; ends every JobSignals
	stop    context.CancelFunc
	subs    sync.WaitGroup // JobSignals relays
}

var _ store.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger makes the store log to l. Without it the store logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// Open connects to the database at url (any connection string pgx accepts)
// and migrates its schema to the newest version this code knows. A schema
// newer than this code is refused (ErrSchemaTooNew). Errors name the
// database but never the password.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn's parse errors redact the password.
		return nil, fmt.Errorf("open database: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "leash"
	}
	// The store's concurrency (see the package documentation) is reasoned
	// for READ COMMITTED. A stricter default set on the server, database
	// or role would turn its races into serialization failures; a
	// connection's startup parameters take precedence over all three.
	cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = "read committed"
	name := describe(cfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	listen := cfg.ConnConfig.Copy()
	listen.RuntimeParams["application_name"] = listenerAppName(cfg.ConnConfig.RuntimeParams["application_name"])
	closing, stop := context.WithCancel(context.Background())
	s := &Store{pool: pool, listen: listen, name: name, log: o.log.With("database", name), closing: closing, stop: stop}
	if err := s.migrate(ctx); err != nil {
		stop()
		pool.Close()
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	return s, nil
}

// Close ends every JobSignals subscription, waits for them, and closes the
// store's connections. Later calls do nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.subs.Wait()
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database %s: %w", s.name, err)
	}
	return nil
}

// describe names the database cfg connects to, without credentials.
func describe(cfg *pgx.ConnConfig) string {
	return cfg.User + "@" + net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database
}

// timeLayout is the stored form of every time: fixed width, so that text
// order is time order, and nanosecond precision.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// encodeTime returns the stored form of t, which must fall in the years
// 0000 to 9999.
func encodeTime(t time.Time) (string, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("time %s is outside the years 0000-9999 the store can hold", t.Format(time.RFC3339Nano))
	}
	return t.Format(timeLayout), nil
}

// encodeOptTime is encodeTime for optional columns: the zero time is NULL.
func encodeOptTime(t time.Time) (*string, error) {
	if t.IsZero() {
		return nil, nil
	}
	s, err := encodeTime(t)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// decodeTime parses a stored time; NULL (nil) becomes the zero time.
func decodeTime(s *string) (time.Time, error) {
	if s == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(timeLayout, *s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", *s, err)
	}
	return t.UTC(), nil
}

// timeDecoder decodes several stored times and keeps the first error, so
// that a scan function reads as a list of fields rather than of checks.
type timeDecoder struct{ err error }

func (d *timeDecoder) decode(s *string) time.Time {
	if d.err != nil {
		return time.Time{}
	}
	t, err := decodeTime(s)
	d.err = err
	return t
}

// timeEncoder is the encoding counterpart of timeDecoder.
type timeEncoder struct{ err error }

func (e *timeEncoder) encode(name string, t time.Time) string {
	if e.err != nil {
		return ""
	}
	s, err := encodeTime(t)
	if err != nil {
		e.err = fmt.Errorf("%s: %w", name, err)
	}
	return s
}

func (e *timeEncoder) encodeOpt(name string, t time.Time) *string {
	if e.err != nil {
		return nil
	}
	s, err := encodeOptTime(t)
	if err != nil {
		e.err = fmt.Errorf("%s: %w", name, err)
	}
	return s
}

// params collects a query's arguments and names their placeholders, for
// queries whose WHERE clause depends on a filter.
type params []any

// add appends v and returns its placeholder ($1, $2, ...).
func (p *params) add(v any) string {
	*p = append(*p, v)
	return "$" + strconv.Itoa(len(*p))
}

// nullIfEmpty returns nil for "", so that an optional text column holds
// NULL rather than an empty string.
func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// blob returns b, or an empty non-nil slice for nil, so that the NOT NULL
// bytea columns store an empty value rather than refusing NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// isNoRows reports whether err says a query returned no row.
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// querier is what the read helpers need of a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}
