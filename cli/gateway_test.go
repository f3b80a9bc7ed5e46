package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/cli"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
	"github.com/leashpki/leash/runner"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// leash runs one CLI command in-process and returns its exit code,
// stdout and stderr.
func leash(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut syncBuffer
	code := cli.Run(context.Background(), cli.Env{Stdout: &out, Stderr: &errOut}, append([]string{"leash"}, args...))
	return code, out.String(), errOut.String()
}

func mustLeash(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := leash(t, args...)
	if code != 0 {
		t.Fatalf("leash %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// TestOperatorCLIAgainstGateway: 'leash login' with an operator token, then
// runner list/show/revoke and job submit/get/list against a real gateway
// with a real runner.
func TestOperatorCLIAgainstGateway(t *testing.T) {
	h := testharness.New(t, testharness.Options{})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "web-1", testharness.RunnerOptions{Commands: map[string][]string{"greet": {"echo", "hi there"}}})
	testharness.Eventually(t, 10*time.Second, "runner connected", func() bool { return r.Agent.Sessions() > 0 })

	dir := t.TempDir()
	tok, err := h.CA.CreateToken(context.Background(), ca.TokenRequest{Profile: ca.ProfileOperator, Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(tok.Value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "home", "config.yaml")
	mustLeash(t, "login", "--config", cfg, "--token-file", tokenFile, "--enroll-url", gw.EnrollURL, gw.APIURL)
	if st, err := os.Stat(cfg); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("client config: %v %v; want mode 0600", err, st)
	}
	// The token is spent: a second login with it is refused, nothing written.
	if code, _, errOut := leash(t, "login", "--config", filepath.Join(dir, "other.yaml"), "--token-file", tokenFile, "--enroll-url", gw.EnrollURL, gw.APIURL); code == 0 || !strings.Contains(errOut, "already used") {
		t.Fatalf("token reused for login: exit %d: %s", code, errOut)
	}

	var list protocol.RunnerList
	testharness.Eventually(t, 10*time.Second, "web-1 listed online", func() bool {
		list = protocol.RunnerList{}
		if err := json.Unmarshal([]byte(mustLeash(t, "runner", "list", "--config", cfg, "--json")), &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Runners) == 1 && list.Runners[0].Status == protocol.RunnerOnline
	})
	if table := mustLeash(t, "runner", "list", "--config", cfg); !strings.Contains(table, "web-1") || !strings.Contains(table, "online") {
		t.Errorf("runner table:\n%s", table)
	}
	if show := mustLeash(t, "runner", "show", "--config", cfg, "web-1"); !strings.Contains(show, "exec:greet") {
		t.Errorf("runner show lacks capabilities:\n%s", show)
	}

	var job protocol.Job
	out := mustLeash(t, "job", "submit", "--config", cfg, "--wait", "30s", "--json", "web-1", "exec", "greet")
	if err := json.Unmarshal([]byte(out), &job); err != nil || job.State != protocol.JobSucceeded || job.Result == nil || job.Result.Output != "hi there\n" {
		t.Fatalf("job submit --wait: %v %s", err, out)
	}
	if got := mustLeash(t, "job", "get", "--config", cfg, job.ID); !strings.Contains(got, "succeeded") || !strings.Contains(got, "hi there") {
		t.Errorf("job get:\n%s", got)
	}
	if jobs := mustLeash(t, "job", "list", "--config", cfg, "--runner", "web-1"); !strings.Contains(jobs, job.ID) {
		t.Errorf("job list:\n%s", jobs)
	}
	if code, _, errOut := leash(t, "job", "submit", "--config", cfg, "nobody", "info"); code == 0 || errOut == "" {
		t.Errorf("job for an unknown runner accepted: exit %d %s", code, errOut)
	}

	mustLeash(t, "runner", "revoke", "--config", cfg, "--reason", "key-compromise", "web-1")
	exited, err := r.Exited(15 * time.Second)
	if !exited || !errors.Is(err, runner.ErrNeedToken) {
		t.Fatalf("revoked runner: exited=%v err=%v", exited, err)
	}
	if show := mustLeash(t, "runner", "show", "--config", cfg, "web-1"); !strings.Contains(show, "revoked") {
		t.Errorf("runner show after revoke:\n%s", show)
	}
}

// TestDevCommand: 'leash dev' brings up CA, gateway and a runner that
// takes jobs from the CLI, and stops cleanly when its context ends.
func TestDevCommand(t *testing.T) {
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, cli.Env{Stdout: &out, Stderr: &errOut}, []string{"leash", "--data-dir", dataDir, "dev",
			"--listen", "127.0.0.1:0", "--enroll-listen", "127.0.0.1:0", "--log-level", "warn"})
	}()
	cfg := filepath.Join(dataDir, "operator", "config.yaml")
	testharness.Eventually(t, 30*time.Second, "leash dev banner", func() bool {
		select {
		case code := <-done:
			t.Fatalf("leash dev exited early with %d: %s %s", code, out.String(), errOut.String())
		default:
		}
		return strings.Contains(out.String(), "Leash is running")
	})
	if st, err := os.Stat(filepath.Join(dataDir, "ca-password")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated CA password file: %v", err)
	}
	testharness.Eventually(t, 20*time.Second, "dev-runner online", func() bool {
		code, list, _ := leash(t, "runner", "list", "--config", cfg)
		return code == 0 && strings.Contains(list, "dev-runner") && strings.Contains(list, "online")
	})
	var job protocol.Job
	if err := json.Unmarshal([]byte(mustLeash(t, "job", "submit", "--config", cfg, "--wait", "30s", "--json", "dev-runner", "exec", "hostname")), &job); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if job.State != protocol.JobSucceeded || job.Result == nil || strings.TrimSpace(job.Result.Output) != host {
		t.Fatalf("hostname job: %+v %+v", job, job.Result)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(out.String(), "leash dev stopped") {
			t.Fatalf("leash dev stop: exit %d\n%s\n%s", code, out.String(), errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("leash dev did not stop within 20s of cancellation")
	}
}
