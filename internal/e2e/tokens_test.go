package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/enroll"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/runner"
)

// TestTokenReuseRefused: a token enrolls one runner once; a second runner
// presenting it is refused and stops with a clear error, holding no
// identity.
func TestTokenReuseRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		h := testharness.New(t, opts)
		gw := h.StartGateway(t)
		token := h.Token(t, "db-1")
		first := h.StartRunner(t, gw, "db-1", testharness.RunnerOptions{Token: token})
		testharness.Eventually(t, 10*time.Second, "first runner enrolled", func() bool { return first.Agent.Certificate() != nil })

		second := h.StartRunner(t, gw, "db-1", testharness.RunnerOptions{Token: token})
		exited, err := second.Exited(20 * time.Second)
		if !exited || !errors.Is(err, enroll.ErrRefused) {
			t.Fatalf("second use of a token: exited=%v err=%v; want enroll.ErrRefused", exited, err)
		}
		if _, err := os.Stat(filepath.Join(second.StateDir, "identity.pem")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("refused runner kept an identity file: %v", err)
		}
	})
}

// TestTokenForAnotherName: a runner never spends a token made for another
// name; a token pinned to a foreign CA is refused before anything is sent.
func TestTokenForAnotherName(t *testing.T) {
	h := testharness.New(t, testharness.Options{})
	gw := h.StartGateway(t)
	other := testharness.New(t, testharness.Options{})
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"token for another runner", h.Token(t, "someone-else"), runner.ErrFatal},
		{"token of a foreign CA", other.Token(t, "web-9"), enroll.ErrFingerprint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.StartRunner(t, gw, "web-9", testharness.RunnerOptions{Token: tt.token})
			exited, err := r.Exited(20 * time.Second)
			if !exited || !errors.Is(err, tt.want) {
				t.Fatalf("exited=%v err=%v; want %v", exited, err, tt.want)
			}
		})
	}
}

// TestRestartKeepsIdentity: a restarted runner reuses its key and
// certificate without a token; an identity file others can read is
// refused.
func TestRestartKeepsIdentity(t *testing.T) {
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		h := testharness.New(t, opts)
		gw := h.StartGateway(t)
		r := h.StartRunner(t, gw, "app-1")
		testharness.Eventually(t, 10*time.Second, "enrolled", func() bool { return r.Agent.Certificate() != nil })
		serial := r.Agent.Certificate().SerialNumber.String()
		if err := r.Stop(t); err != nil {
			t.Fatalf("stop: %v", err)
		}
		st, err := os.Stat(filepath.Join(r.StateDir, "identity.pem"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("identity file: %v mode %v; want 0600", err, st.Mode())
		}

		again := h.StartRunner(t, gw, "app-1", testharness.RunnerOptions{StateDir: r.StateDir, NoToken: true})
		testharness.Eventually(t, 10*time.Second, "restarted runner connected", func() bool { return again.Agent.Sessions() > 0 && again.Agent.Certificate() != nil })
		if got := again.Agent.Certificate().SerialNumber.String(); got != serial {
			t.Fatalf("restart changed the certificate: %s -> %s", serial, got)
		}
		if err := again.Stop(t); err != nil {
			t.Fatal(err)
		}

		if err := os.Chmod(filepath.Join(r.StateDir, "identity.pem"), 0o644); err != nil {
			t.Fatal(err)
		}
		loose := h.StartRunner(t, gw, "app-1", testharness.RunnerOptions{StateDir: r.StateDir, NoToken: true})
		if exited, err := loose.Exited(10 * time.Second); !exited || !errors.Is(err, runner.ErrFatal) {
			t.Fatalf("identity readable by others: exited=%v err=%v; want a fatal error", exited, err)
		}

		empty := h.StartRunner(t, gw, "app-2", testharness.RunnerOptions{NoToken: true})
		if exited, err := empty.Exited(10 * time.Second); !exited || !errors.Is(err, runner.ErrNeedToken) {
			t.Fatalf("no identity, no token: exited=%v err=%v; want ErrNeedToken", exited, err)
		}
	})
}
