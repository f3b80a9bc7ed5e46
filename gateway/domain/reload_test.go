package domain

import (
	"errors"
	"net/http"
	"sync"
	"testing"
)

// held blocks requests to /hold until release is closed and answers the
// user it saw; other paths answer at once.
type held struct {
	entered chan struct{}
	release chan struct{}
}

func (h *held) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/hold" {
		h.entered <- struct{}{}
		<-h.release
	}
	w.Write([]byte("user=" + User(r.Context())))
}

func TestReloadInFlightKeepsItsPolicy(t *testing.T) {
	a := Policy{Credentials: []Credential{{"alice", bcryptHash(t, "alice-pw", "$2b$")}}}
	b := Policy{Credentials: []Credential{{"bob", bcryptHash(t, "bob-pw", "$2b$")}}, AllowCIDRs: []string{"192.0.2.0/24"}}
	next := &held{entered: make(chan struct{}, 1), release: make(chan struct{})}
	l := newLive(t, a, next)

	type result struct {
		code int
		body string
	}
	done := make(chan result, 1)
	go func() {
		r, _ := http.NewRequest(http.MethodGet, "http://app.example/hold", nil)
		r.RemoteAddr = "192.0.2.1:1"
		r.SetBasicAuth("alice", "alice-pw")
		w := &recorder{header: http.Header{}}
		l.ServeHTTP(w, r)
		done <- result{w.code, w.body}
	}()
	<-next.entered // alice is in, under A

	if err := l.Store(b); err != nil {
		t.Fatal(err)
	}
	alice := func(r *http.Request) { r.SetBasicAuth("alice", "alice-pw") }
	bob := func(r *http.Request) { r.SetBasicAuth("bob", "bob-pw") }
	if w := do(l, "192.0.2.1:1", alice); w.Code != 401 {
		t.Fatalf("alice under B: %d", w.Code)
	}
	if w := do(l, "192.0.2.1:1", bob); w.Code != 200 || w.Body.String() != "user=bob" {
		t.Fatalf("bob under B: %d %q", w.Code, w.Body)
	}
	if w := do(l, "198.51.100.1:1", bob); w.Code != 403 {
		t.Fatalf("bob from outside B's networks: %d", w.Code)
	}
	close(next.release)
	if r := <-done; r.code != 200 || r.body != "user=alice" {
		t.Fatalf("the request in flight under A ended with %d %q", r.code, r.body)
	}
}

// recorder is a ResponseWriter for a request served in a goroutine (the
// test reads it only after the goroutine has handed it over).
type recorder struct {
	header http.Header
	code   int
	body   string
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(c int) {
	if r.code == 0 {
		r.code = c
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(200)
	r.body += string(p)
	return len(p), nil
}

// The in-flight count belongs to the Live: a reload neither forgets the
// requests running nor frees their slots.
func TestReloadKeepsConcurrencyCount(t *testing.T) {
	b := newBlocker()
	l := newLive(t, Policy{MaxConcurrent: 2}, b)
	wait := startN(t, l, b, 2, nil)
	if w := do(l, "192.0.2.1:1", nil); w.Code != 429 {
		t.Fatalf("full at 2: %d", w.Code)
	}
	// Raising the limit admits more at once.
	if err := l.Store(Policy{MaxConcurrent: 3}); err != nil {
		t.Fatal(err)
	}
	wait3 := startN(t, l, b, 1, nil)
	if l.InFlight() != 3 {
		t.Fatalf("in flight %d", l.InFlight())
	}
	// Lowering it below the running count refuses new requests until
	// enough have finished; the running ones are untouched.
	if err := l.Store(Policy{MaxConcurrent: 1}); err != nil {
		t.Fatal(err)
	}
	if w := do(l, "192.0.2.1:1", nil); w.Code != 429 {
		t.Fatalf("3 running under a limit of 1: %d", w.Code)
	}
	// Unlimited still counts, so that a later limit knows the load.
	if err := l.Store(Policy{}); err != nil {
		t.Fatal(err)
	}
	wait4 := startN(t, l, b, 1, nil)
	if l.InFlight() != 4 {
		t.Fatalf("in flight %d without a limit", l.InFlight())
	}
	close(b.release)
	for _, c := range append(append(wait(), wait3()...), wait4()...) {
		if c != 200 {
			t.Fatalf("a running request ended with %d", c)
		}
	}
	if err := l.Store(Policy{MaxConcurrent: 1}); err != nil {
		t.Fatal(err)
	}
	if l.InFlight() != 0 {
		t.Fatalf("in flight %d", l.InFlight())
	}
	if w := do(l, "192.0.2.1:1", nil); w.Code != 200 {
		t.Fatalf("after all finished: %d", w.Code)
	}
}

func TestReloadRefusesInvalidAndForgetsOldPasswords(t *testing.T) {
	l := newLive(t, Policy{Credentials: []Credential{{"dave", shaHello}}}, &okHandler{})
	dave := func(pw string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth("dave", pw) } }
	if w := do(l, "192.0.2.1:1", dave("Hello world!")); w.Code != 200 {
		t.Fatalf("login: %d", w.Code) // now remembered in the cache
	}
	if err := l.Store(Policy{MaxConcurrent: -5}); !errors.Is(err, ErrPolicy) {
		t.Fatalf("invalid policy stored: %v", err)
	}
	if w := do(l, "192.0.2.1:1", dave("Hello world!")); w.Code != 200 {
		t.Fatalf("a refused reload changed the policy: %d", w.Code)
	}
	if err := l.Store(Policy{Credentials: []Credential{{"dave", bcryptHash(t, "new-pw", "$2a$")}}}); err != nil {
		t.Fatal(err)
	}
	if w := do(l, "192.0.2.1:1", dave("Hello world!")); w.Code != 401 {
		t.Fatalf("the old password still works after the change: %d", w.Code)
	}
	if w := do(l, "192.0.2.1:1", dave("new-pw")); w.Code != 200 {
		t.Fatalf("new password: %d", w.Code)
	}
}

// Requests and reloads at once: for the race detector, and the count
// must come back to zero.
func TestReloadConcurrentWithRequests(t *testing.T) {
	l := newLive(t, Policy{}, &okHandler{})
	policies := []Policy{{}, {MaxConcurrent: 1}, {AllowCIDRs: []string{"192.0.2.0/24"}}, {AllowCIDRs: []string{"10.0.0.0/8"}, Stealth: true}}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				switch c := do(l, "192.0.2.1:1", nil).Code; c {
				case 200, 404, 429:
				default:
					t.Errorf("status %d", c)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			if err := l.Store(policies[i%len(policies)]); err != nil {
				t.Error(err)
			}
			_ = l.Policy()
		}
	})
	wg.Wait()
	if l.InFlight() != 0 {
		t.Fatalf("in flight %d", l.InFlight())
	}
}
