package domain

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// blocker is a next handler that holds each request until released.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (b *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.entered <- struct{}{}
	<-b.release
	w.Write([]byte("done"))
}

// startN starts n requests through h and waits until next holds them all.
// The returned wait blocks until they have finished and returns their
// status codes.
func startN(t *testing.T, h http.Handler, b *blocker, n int, mod func(*http.Request)) (wait func() []int) {
	t.Helper()
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i] = do(h, "192.0.2.1:1", mod).Code })
	}
	for range n {
		<-b.entered
	}
	return func() []int { wg.Wait(); return codes }
}

func TestConcurrencyLimit(t *testing.T) {
	b := newBlocker()
	sink := &logSink{}
	creds := []Credential{{"dave", shaHello}}
	auth := func(r *http.Request) { r.SetBasicAuth("dave", "Hello world!") }
	for _, stealth := range []bool{false, true} {
		l := newLive(t, Policy{MaxConcurrent: 2, Credentials: creds, Stealth: stealth}, b, WithLogger(sink.logger()))
		wait := startN(t, l, b, 2, auth)
		if l.InFlight() != 2 {
			t.Fatalf("in flight %d", l.InFlight())
		}
		// Full: an authorized request gets 429 with Retry-After, even in
		// stealth mode (it passed every access check).
		w := do(l, "192.0.2.1:1", auth)
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != RetryAfter {
			t.Fatalf("stealth=%v: status %d, Retry-After %q", stealth, w.Code, w.Header().Get("Retry-After"))
		}
		// A stranger is refused for what it is, not for the load, and
		// takes no slot.
		if w := do(l, "192.0.2.1:1", nil); w.Code == http.StatusTooManyRequests {
			t.Fatal("an unauthenticated request was counted against the limit")
		}
		b.release <- struct{}{} // one finishes
		eventually(t, "a slot to free", func() bool { return l.InFlight() == 1 })
		wait2 := startN(t, l, b, 1, auth) // its slot is free again
		close(b.release)
		for _, c := range append(wait(), wait2()...) {
			if c != 200 {
				t.Fatalf("held request ended with %d", c)
			}
		}
		if l.InFlight() != 0 {
			t.Fatalf("in flight %d after all ended", l.InFlight())
		}
		b.release = make(chan struct{})
	}
	recs := sink.records(t, LogRefused)
	n429 := 0
	for _, r := range recs {
		if r["reason"] == string(ReasonConcurrency) {
			n429++
		}
	}
	if n429 != 2 {
		t.Fatalf("%d concurrency refusals logged: %v", n429, recs)
	}
}

func TestBodyLimitContentLength(t *testing.T) {
	for _, tc := range []struct {
		size int
		want int
	}{{16, 200}, {17, 413}, {0, 200}} {
		var read int
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("read: %v", err)
			}
			read = len(b)
		})
		sink := &logSink{}
		l := newLive(t, Policy{MaxBodyBytes: 16, Stealth: true}, next, WithLogger(sink.logger()))
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", tc.size)))
		r.RemoteAddr = "192.0.2.1:1"
		w := httptest.NewRecorder()
		l.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Fatalf("%d bytes: status %d, want %d", tc.size, w.Code, tc.want)
		}
		if tc.want == 200 && read != tc.size {
			t.Fatalf("next read %d of %d", read, tc.size)
		}
		if tc.want == 413 {
			if read != 0 {
				t.Fatal("next ran")
			}
			if recs := sink.records(t, LogRefused); len(recs) != 1 || recs[0]["reason"] != string(ReasonBodyTooLarge) {
				t.Fatalf("log %v", recs)
			}
		}
	}
}

// A body without a length is cut at the limit. If next has not answered,
// its answer (here a proxy's 502) becomes a 413; if it has, the stream
// goes on and next sees the error.
func TestBodyLimitStreamed(t *testing.T) {
	for _, tc := range []struct {
		name        string
		size        int
		answerFirst bool
		wantStatus  int
		wantBody    string
	}{
		{"under the limit", 16, false, 200, "got 16"},
		{"over, before the answer", 17, false, 413, "413 request body too large\n"},
		{"over, after the answer", 1000, true, 200, "started"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nextErr := make(chan error, 1)
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.answerFirst {
					// HTTP/1 closes the request body at the first
					// response write unless full duplex is on; the
					// controller must find it through the wrapper.
					if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
						t.Errorf("EnableFullDuplex: %v", err)
					}
					w.Header().Set("Content-Type", "text/plain")
					w.Write([]byte("started"))
					http.NewResponseController(w).Flush()
				}
				b, err := io.ReadAll(r.Body)
				nextErr <- err
				if tc.answerFirst {
					return
				}
				if err != nil {
					w.Header().Set("X-From-Next", "1")
					w.WriteHeader(http.StatusBadGateway)
					w.Write([]byte("proxy error"))
					return
				}
				w.Write([]byte("got " + strconv.Itoa(len(b))))
			})
			sink := &logSink{}
			l := newLive(t, Policy{MaxBodyBytes: 16}, next, WithLogger(sink.logger()))
			srv := httptest.NewServer(l)
			defer srv.Close()
			// A reader of unknown length makes the client send chunks.
			body := io.MultiReader(strings.NewReader(strings.Repeat("y", tc.size)))
			resp, err := http.Post(srv.URL, "text/plain", body)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || string(got) != tc.wantBody {
				t.Fatalf("status %d body %q, want %d %q", resp.StatusCode, got, tc.wantStatus, tc.wantBody)
			}
			if resp.Header.Get("X-From-Next") != "" || resp.Header.Get(HeaderTransactionID) == "" {
				t.Fatalf("headers %v", resp.Header)
			}
			err = <-nextErr
			var tooLarge *http.MaxBytesError
			if over := tc.size > 16; over != errors.As(err, &tooLarge) {
				t.Fatalf("next's read error: %v", err)
			}
			if tc.size > 16 {
				if recs := sink.records(t, LogRefused); len(recs) != 1 || recs[0]["streamed"] != true {
					t.Fatalf("log %v", recs)
				}
			}
		})
	}
}
