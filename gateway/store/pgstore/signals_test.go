package pgstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/testpg"
)

func TestSignalsAcrossStores(t *testing.T) {
	ctx := testContext(t)
	url := testpg.Start(t)
	a := openTemp(t, url)
	b := openTemp(t, url)
	subA, subB := subscribe(t, a), subscribe(t, b)
	if err := a.SubmitJob(ctx, job("j1", "web-7")); err != nil {
		t.Fatalf("SubmitJob through A: %v", err)
	}
	expectSignal(t, "B", subB, "web-7", 10*time.Second)
	expectSignal(t, "A", subA, "web-7", 10*time.Second)

	// A duplicate submission stores nothing and wakes nobody.
	if err := a.SubmitJob(ctx, job("j1", "web-8")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate SubmitJob: %v, want ErrExists", err)
	}
	if err := b.SubmitJob(ctx, job("j2", "web-9")); err != nil {
		t.Fatalf("SubmitJob through B: %v", err)
	}
	expectSignal(t, "A", subA, "web-9", 10*time.Second)
}

func TestSignalsReconnect(t *testing.T) {
	ctx := testContext(t)
	url := testpg.Start(t)
	s := openTemp(t, url)
	sub := subscribe(t, s)
	// End the listening session from the server side, as a restart or a
	// network failure would.
	conn := connect(t, url)
	var killed bool
	err := conn.QueryRow(ctx, `
SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1`, listenerAppName("leash")).Scan(&killed)
	if err != nil || !killed {
		t.Fatalf("terminate the listening session: %v (terminated: %v)", err, killed)
	}
	// Jobs submitted before the relay has reconnected are not signalled
	// (store.Jobs allows that), so submit until one is.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		runner := "web-" + strconv.Itoa(i)
		if err := s.SubmitJob(ctx, job("j"+strconv.Itoa(i), runner)); err != nil {
			t.Fatalf("SubmitJob: %v", err)
		}
		if got, ok := nextSignal(sub, 200*time.Millisecond); ok {
			if !strings.HasPrefix(got, "web-") {
				t.Fatalf("signal %q after reconnecting", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no signal within 30s of the listening session ending: the relay did not reconnect")
		}
	}
}

func TestSignalsEndWithCloseAndContext(t *testing.T) {
	ctx := testContext(t)
	url := testpg.Start(t)
	s, err := Open(ctx, url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s2 := openTemp(t, url)
	byCtx, cancel := context.WithCancel(ctx)
	chCtx, err := s.JobSignals(byCtx)
	if err != nil {
		t.Fatalf("JobSignals: %v", err)
	}
	chClose, err := s.JobSignals(context.Background())
	if err != nil {
		t.Fatalf("JobSignals: %v", err)
	}
	cancel()
	expectClosed(t, "channel of a cancelled subscription", chCtx)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close waited for the relay, so the channel is closed already.
	select {
	case _, ok := <-chClose:
		if ok {
			t.Fatal("a signal arrived after Close")
		}
	default:
		t.Fatal("Close returned while a subscription's channel was still open")
	}
	ended, stop := context.WithCancel(ctx)
	stop()
	chEnded, err := s2.JobSignals(ended)
	if err != nil {
		t.Fatalf("JobSignals with an ended context: %v", err)
	}
	expectClosed(t, "channel of a subscription whose context had ended", chEnded)
	if _, err := s.JobSignals(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("JobSignals after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// subscribe returns s's job signals for the rest of the test.
func subscribe(t *testing.T, s *Store) <-chan string {
	t.Helper()
	ch, err := s.JobSignals(t.Context())
	if err != nil {
		t.Fatalf("JobSignals: %v", err)
	}
	return ch
}

// nextSignal returns the next signal on ch, or false after wait.
func nextSignal(ch <-chan string, wait time.Duration) (string, bool) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case got, ok := <-ch:
		return got, ok
	case <-timer.C:
		return "", false
	}
}

func expectSignal(t *testing.T, who string, ch <-chan string, want string, wait time.Duration) {
	t.Helper()
	got, ok := nextSignal(ch, wait)
	switch {
	case !ok:
		t.Fatalf("store %s: no signal for %s within %s", who, want, wait)
	case got != want:
		t.Fatalf("store %s: signal for %q, want %q", who, got, want)
	}
}

// expectClosed waits for ch to be closed, draining it.
func expectClosed(t *testing.T, what string, ch <-chan string) {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("%s not closed within 10s", what)
		}
	}
}
