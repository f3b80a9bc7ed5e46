package domain

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// shaHello is the first specification vector: "Hello world!".
const shaHello = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"

// bcryptHash hashes pw at the lowest cost, with the given variant prefix.
func bcryptHash(t testing.TB, pw, variant string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return variant + string(h[4:])
}

// fakeClock is a settable clock.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.set(t)
	return c
}
func (c *fakeClock) set(t time.Time) { c.t.Store(&t) }
func (c *fakeClock) now() time.Time  { return *c.t.Load() }

// at parses "Mon 2024-01-01 08:00:00" as UTC and checks the weekday, so
// that a test's dates say what they mean (2024-01-01 is a Monday).
func at(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse("Mon 2006-01-02 15:04:05", s)
	if err != nil {
		t.Fatal(err)
	}
	if v.Format("Mon") != s[:3] {
		t.Fatalf("%s is a %s", s[4:14], v.Format("Mon"))
	}
	return v
}

// logSink collects JSON log records.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the records whose msg is msg.
func (s *logSink) records(t testing.TB, msg string) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(s.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// okHandler answers 200 "ok" and records what it saw.
type okHandler struct {
	mu   sync.Mutex
	last *http.Request
}

func (h *okHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.last = r
	h.mu.Unlock()
	w.Write([]byte("ok"))
}

func (h *okHandler) seen() *http.Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for wait := time.Millisecond; !cond(); wait = min(wait*2, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(wait)
	}
}
