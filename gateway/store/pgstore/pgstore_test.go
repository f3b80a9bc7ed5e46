package pgstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/gateway/store/storetest"
	"github.com/leashpki/leash/internal/testpg"
	"github.com/leashpki/leash/protocol"
)

func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTemp(t, testpg.Start(t))
	})
}

// openTemp opens the store at url and closes it when the test ends.
func openTemp(t *testing.T, url string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(testContext(t), url, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestTwoStoresSpendRace(t *testing.T) {
	// Two Stores are two connection pools on one database, as two gateway
	// replicas would have.
	url := testpg.Start(t)
	a := openTemp(t, url)
	b := openTemp(t, url)
	storetest.SpendRace(t, []ca.Store{a, b}, 20, 10)
}

func TestTwoStoresRaces(t *testing.T) {
	url := testpg.Start(t)
	a := openTemp(t, url)
	b := openTemp(t, url)
	t.Run("claims", func(t *testing.T) { storetest.ClaimRace(t, []store.Store{a, b}, 30, 6) })
	t.Run("offline", func(t *testing.T) { storetest.MarkOfflineRace(t, []store.Store{a, b}, 30, 6) })
	t.Run("locks", func(t *testing.T) { storetest.LockRace(t, a, b) })
}

func TestStricterServerDefaultIsolation(t *testing.T) {
	// The store's concurrency rests on READ COMMITTED; a database whose
	// default is SERIALIZABLE must not turn the races into failures.
	ctx := testContext(t)
	url := testpg.Start(t)
	if _, err := connect(t, url).Exec(ctx, `DO $$ BEGIN
	EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = serializable', current_database());
END $$`); err != nil {
		t.Fatalf("set the database's default isolation: %v", err)
	}
	a := openTemp(t, url)
	b := openTemp(t, url)
	var level string
	if err := a.pool.QueryRow(ctx, `SHOW transaction_isolation`).Scan(&level); err != nil || level != "read committed" {
		t.Errorf("store session isolation = %q, %v; want read committed", level, err)
	}
	t.Run("claims", func(t *testing.T) { storetest.ClaimRace(t, []store.Store{a, b}, 30, 6) })
	t.Run("offline", func(t *testing.T) { storetest.MarkOfflineRace(t, []store.Store{a, b}, 30, 6) })
	t.Run("spends", func(t *testing.T) { storetest.SpendRace(t, []ca.Store{a, b}, 20, 10) })
	t.Run("locks", func(t *testing.T) { storetest.LockRace(t, a, b) })
}

func TestConcurrentOpenOfEmptyDatabase(t *testing.T) {
	ctx := testContext(t)
	url := testpg.Start(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(ctx, url)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		if err := stores[i].Close(); err != nil {
			t.Errorf("Close %d: %v", i, err)
		}
	}
	if got := appliedVersions(t, url); !slices.Equal(got, knownVersions(t)) {
		t.Errorf("schema_migrations = %v, want %v (each migration applied once)", got, knownVersions(t))
	}
}

func TestListsAreInByteOrder(t *testing.T) {
	// The throwaway cluster's databases sort text by ICU's en-US rules,
	// where "alpha" < "web-1" < "Web-2"; the store must still list ids in
	// byte order, as SQLite does.
	ctx := testContext(t)
	url := testpg.Start(t)
	s := openTemp(t, url)
	var collation string
	if err := connect(t, url).QueryRow(ctx, `SELECT datcollate || '/' || coalesce(daticulocale, '') FROM pg_database WHERE datname = current_database()`).Scan(&collation); err != nil {
		t.Logf("database collation: %v", err)
	} else {
		t.Logf("database collation: %s", collation)
	}
	ids := []string{"web-1", "Web-2", "alpha"}
	want := []string{"Web-2", "alpha", "web-1"}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range ids {
		if _, err := s.RegisterRunner(ctx, store.RunnerRecord{ID: id, LastSeen: at}); err != nil {
			t.Fatalf("RegisterRunner: %v", err)
		}
		j := job("job-"+id, "r")
		j.CreatedAt = at
		if err := s.SubmitJob(ctx, j); err != nil {
			t.Fatalf("SubmitJob: %v", err)
		}
	}
	runners, err := s.Runners(ctx, store.RunnerQuery{})
	if err != nil {
		t.Fatalf("Runners: %v", err)
	}
	var got []string
	for _, r := range runners {
		got = append(got, r.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Runners in order %v, want byte order %v", got, want)
	}
	got = nil
	for range ids {
		j, err := s.ClaimJob(ctx, "r", at, at.Add(time.Minute))
		if err != nil {
			t.Fatalf("ClaimJob: %v", err)
		}
		got = append(got, strings.TrimPrefix(j.ID, "job-"))
	}
	if !slices.Equal(got, want) {
		t.Errorf("jobs created at one instant claimed in order %v, want byte order of ids %v", got, want)
	}
}

func TestEventsTailAcrossStores(t *testing.T) {
	// A reader paging with AfterSeq while two stores append must see every
	// event: sequence numbers may not become visible out of order.
	ctx := testContext(t)
	url := testpg.Start(t)
	stores := []*Store{openTemp(t, url), openTemp(t, url)}
	reader := openTemp(t, url)
	const writers, batches = 4, 25
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for i := range batches {
				e := store.EventRecord{RunnerID: "w" + strconv.Itoa(w), Time: time.Now(), Kind: protocol.EventLog,
					Message: strconv.Itoa(i)}
				if err := s.AppendEvents(ctx, []store.EventRecord{e, e}); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	seen := 0
	var after int64
	deadline := time.Now().Add(30 * time.Second)
	for seen < writers*batches*2 && time.Now().Before(deadline) {
		es, err := reader.Events(ctx, store.EventQuery{AfterSeq: after})
		if err != nil {
			t.Fatalf("Events: %v", err)
		}
		for _, e := range es {
			if e.Seq <= after {
				t.Fatalf("Events after %d returned %d", after, e.Seq)
			}
			after = e.Seq
			seen++
		}
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	if seen != writers*batches*2 {
		t.Errorf("the tailing reader saw %d of %d events", seen, writers*batches*2)
	}
}

func TestFutureSchemaRefused(t *testing.T) {
	ctx := testContext(t)
	url := testpg.Start(t)
	s, err := Open(ctx, url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	known := len(knownVersions(t))
	future := known + 1
	if _, err := connect(t, url).Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'later')`, future); err != nil {
		t.Fatalf("record a future version: %v", err)
	}
	s2, err := Open(ctx, url)
	if err == nil {
		_ = s2.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Errorf("Open: %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{strconv.Itoa(future), strconv.Itoa(known)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %q does not mention %q", err, want)
		}
	}
	want := append(knownVersions(t), future)
	if got := appliedVersions(t, url); !slices.Equal(got, want) {
		t.Errorf("schema_migrations after refused Open = %v, want %v untouched", got, want)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := testContext(t)
	url := testpg.Start(t)
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	s, err := Open(ctx, url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	tok := ca.TokenRecord{ID: "t1", Kind: ca.TokenEnroll, Profile: "runner", Subject: "r1", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	crl := ca.CRLRecord{Number: 3, ThisUpdate: at, NextUpdate: at.Add(time.Hour), Duration: time.Hour, DER: []byte{4}}
	for _, err := range []error{s.PutToken(ctx, tok), s.SpendToken(ctx, "t1", at), s.PutCRL(ctx, crl)} {
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openTemp(t, url)
	if err := s.SpendToken(ctx, "t1", at.Add(time.Second)); !errors.Is(err, ca.ErrTokenUsed) {
		t.Errorf("SpendToken of a token spent before reopen: %v, want ErrTokenUsed", err)
	}
	got, err := s.CRL(ctx)
	if err != nil || got.Number != 3 || !bytes.Equal(got.DER, crl.DER) {
		t.Errorf("CRL after reopen = %+v, %v", got, err)
	}
	if got := appliedVersions(t, url); !slices.Equal(got, knownVersions(t)) {
		t.Errorf("schema_migrations after reopen = %v, want %v (each migration recorded once)", got, knownVersions(t))
	}
}

func TestUnsetTimesRefused(t *testing.T) {
	ctx := testContext(t)
	s := openTemp(t, testpg.Start(t))
	now := time.Now()
	tok := ca.TokenRecord{ID: "t", Kind: ca.TokenEnroll, Profile: "runner", Subject: "r1", CreatedAt: now, ExpiresAt: now}
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
	// A zero time would be stored as NULL and leave the token open.
	if err := s.SpendToken(ctx, "t", time.Time{}); err == nil {
		t.Error("SpendToken with a zero time succeeded")
	}
	if err := s.RevokeToken(ctx, "t", time.Time{}); err == nil {
		t.Error("RevokeToken with a zero time succeeded")
	}
	if err := s.Revoke(ctx, ca.Revocation{Serial: "1", ReasonCode: 1}); err == nil {
		t.Error("Revoke with a zero RevokedAt succeeded")
	}
	if err := s.SpendToken(ctx, "t", now); err != nil {
		t.Errorf("SpendToken after refused calls: %v, want the token still open", err)
	}
	if _, err := s.Revocation(ctx, "1"); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("Revocation after a refused Revoke: %v, want ErrNotFound", err)
	}
	out := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.PutToken(ctx, ca.TokenRecord{ID: "far", CreatedAt: now, ExpiresAt: out}); err == nil {
		t.Error("PutToken with a time after 9999 succeeded")
	}
}

func TestEmptyValues(t *testing.T) {
	// The schema's NOT NULL columns take empty values: a record without DER
	// or SANs is stored, not refused, and comes back empty.
	ctx := testContext(t)
	s := openTemp(t, testpg.Start(t))
	now := time.Now()
	if err := s.PutCertificate(ctx, ca.CertRecord{Serial: "1", NotBefore: now, NotAfter: now, IssuedAt: now}); err != nil {
		t.Fatalf("PutCertificate: %v", err)
	}
	cert, err := s.Certificate(ctx, "1")
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	if len(cert.DER) != 0 || len(cert.SANs) != 0 || cert.Profile != "" {
		t.Errorf("Certificate = %+v, want empty DER, SANs and profile", cert)
	}
	if err := s.PutCRL(ctx, ca.CRLRecord{Number: 0, ThisUpdate: now, NextUpdate: now}); err != nil {
		t.Fatalf("PutCRL: %v", err)
	}
	crl, err := s.CRL(ctx)
	if err != nil {
		t.Fatalf("CRL: %v", err)
	}
	if crl.Number != 0 || len(crl.DER) != 0 {
		t.Errorf("CRL = %+v, want number 0 without DER", crl)
	}
	if err := s.PutCRL(ctx, ca.CRLRecord{Number: -1, ThisUpdate: now, NextUpdate: now}); err == nil {
		t.Error("PutCRL with a negative number succeeded")
	}
	if _, err := s.RegisterRunner(ctx, store.RunnerRecord{ID: "bare", LastSeen: now}); err != nil {
		t.Fatalf("RegisterRunner without labels or capabilities: %v", err)
	}
	r, err := s.Runner(ctx, "bare")
	if err != nil {
		t.Fatalf("Runner: %v", err)
	}
	if r.Labels != nil || r.Capabilities != nil || !r.CertNotAfter.IsZero() {
		t.Errorf("Runner = %+v, want nil labels and capabilities and no certificate expiry", r)
	}
}

func TestWithLogger(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	url := testpg.Start(t)
	openTemp(t, url, WithLogger(log))
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"database schema migrated", "from_version=0",
		"to_version=" + strconv.Itoa(len(knownVersions(t))), cfg.Database} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

func TestOpenErrorsHidePassword(t *testing.T) {
	ctx := testContext(t)
	for _, url := range []string{
		"postgres://leash:s3cret@127.0.0.1:notaport/leash",
		// Port 1 on the loopback refuses at once.
		"postgres://leash:s3cret@127.0.0.1:1/leash?connect_timeout=5",
	} {
		s, err := Open(ctx, url)
		if err == nil {
			_ = s.Close()
			t.Fatalf("Open(%s) succeeded", url)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open error reveals the password: %v", err)
		}
	}
}

func TestMigrationsAreNumbered(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no embedded migrations")
	}
}

func job(id, runner string) store.JobRecord {
	return store.JobRecord{ID: id, Runner: runner, Kind: protocol.JobExec, Command: "uptime",
		CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// connect opens a plain connection to url for the rest of the test.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testContext(t), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// appliedVersions reads schema_migrations from the database at url.
func appliedVersions(t *testing.T, url string) []int {
	t.Helper()
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return out
}

// knownVersions is 1..N for the N migrations this code knows.
func knownVersions(t *testing.T) []int {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, m := range ms {
		out = append(out, m.version)
	}
	return out
}
