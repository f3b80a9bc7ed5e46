package domain

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// SSE events reach the client one by one: next waits for the client to
// have read each event before it writes the next, so a buffered or
// unflushable writer deadlocks into the request's deadline.
func TestSSEPassesThrough(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    Policy
		method    string
		body      string
		assertion bool // next uses w.(http.Flusher), not ResponseController
		wrapped   bool // the body limit wraps the writer
	}{
		{"bare writer, type assertion", Policy{}, http.MethodGet, "", true, false},
		{"bare writer, controller", Policy{MaxBodyBytes: 64}, http.MethodGet, "", false, false},
		{"wrapped writer, type assertion", Policy{MaxBodyBytes: 64}, http.MethodPost, "subscribe", true, true},
		{"wrapped writer, controller", Policy{MaxBodyBytes: 64, Credentials: []Credential{{"dave", shaHello}}},
			http.MethodPost, "subscribe", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step := make(chan struct{})
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, wrapped := w.(*limitWriter); wrapped != tc.wrapped {
					t.Errorf("writer wrapped: %v", wrapped)
				}
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/event-stream")
				flush := func() error { return http.NewResponseController(w).Flush() }
				if tc.assertion {
					f, ok := w.(http.Flusher)
					if !ok {
						t.Error("the ResponseWriter hides http.Flusher")
						return
					}
					flush = func() error { f.Flush(); return nil }
				}
				for i := range 3 {
					fmt.Fprintf(w, "id: %d\ndata: event %d\n\n", i, i)
					if err := flush(); err != nil {
						t.Errorf("flush: %v", err)
						return
					}
					select {
					case <-step:
					case <-r.Context().Done():
						return
					}
				}
			})
			srv := httptest.NewServer(newLive(t, tc.policy, next))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, tc.method, srv.URL+"/events", strings.NewReader(tc.body))
			req.SetBasicAuth("dave", "Hello world!")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get(HeaderTransactionID) == "" {
				t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
			}
			rd := bufio.NewReader(resp.Body)
			for i := range 3 {
				var ev []string
				for {
					line, err := rd.ReadString('\n')
					if err != nil {
						t.Fatalf("event %d: %v (read so far %q)", i, err, ev)
					}
					if line == "\n" {
						break
					}
					ev = append(ev, strings.TrimSuffix(line, "\n"))
				}
				if want := fmt.Sprintf("id: %d,data: event %d", i, i); strings.Join(ev, ",") != want {
					t.Fatalf("event %q, want %q", ev, want)
				}
				step <- struct{}{}
			}
		})
	}
}

// A WebSocket-style upgrade: next hijacks the connection, answers 101 and
// echoes lines both ways. The slot stays taken while the session lasts.
func TestUpgradeHijackPassesThrough(t *testing.T) {
	for _, tc := range []struct {
		name      string
		policy    Policy
		body      string // sent with Content-Length; makes the writer wrapped
		assertion bool   // next uses w.(http.Hijacker)
	}{
		{"bare writer, type assertion", Policy{MaxConcurrent: 1}, "", true},
		{"bare writer, controller", Policy{MaxConcurrent: 1}, "", false},
		{"wrapped writer, type assertion", Policy{MaxConcurrent: 1, MaxBodyBytes: 16}, "hello", true},
		{"wrapped writer, controller", Policy{MaxConcurrent: 1, MaxBodyBytes: 16,
			Credentials: []Credential{{"dave", shaHello}}}, "hello", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sawAuth := make(chan string, 1)
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sawAuth <- r.Header.Get("Authorization")
				if _, wrapped := w.(*limitWriter); wrapped != (tc.body != "") {
					t.Errorf("writer wrapped: %v", wrapped)
				}
				if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
					http.Error(w, "upgrade required", http.StatusUpgradeRequired)
					return
				}
				if b, _ := io.ReadAll(r.Body); string(b) != tc.body {
					t.Errorf("body %q", b)
				}
				hijack := http.NewResponseController(w).Hijack
				if tc.assertion {
					hj, ok := w.(http.Hijacker)
					if !ok {
						t.Error("the ResponseWriter hides http.Hijacker")
						return
					}
					hijack = hj.Hijack
				}
				conn, rw, err := hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				defer conn.Close()
				rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
					"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
				rw.Flush()
				for {
					line, err := rw.ReadString('\n')
					if err != nil {
						return
					}
					rw.WriteString("echo: " + line)
					rw.Flush()
				}
			})
			l := newLive(t, tc.policy, next)
			srv := httptest.NewServer(l)
			defer srv.Close()

			conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			req := "GET /ws HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
				"Authorization: Basic ZGF2ZTpIZWxsbyB3b3JsZCE=\r\n" // dave:Hello world!
			if tc.body != "" {
				req += fmt.Sprintf("Content-Length: %d\r\n", len(tc.body))
			}
			if _, err := io.WriteString(conn, req+"\r\n"+tc.body); err != nil {
				t.Fatal(err)
			}
			rd := bufio.NewReader(conn)
			resp, err := http.ReadResponse(rd, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if auth := <-sawAuth; (auth == "") != (len(tc.policy.Credentials) > 0) {
				t.Errorf("next saw Authorization %q", auth)
			}
			for _, msg := range []string{"one", "two"} {
				io.WriteString(conn, msg+"\n")
				line, err := rd.ReadString('\n')
				if err != nil || line != "echo: "+msg+"\n" {
					t.Fatalf("echo %q, %v", line, err)
				}
			}
			// The live session holds the only slot.
			if l.InFlight() != 1 {
				t.Fatalf("in flight %d during the session", l.InFlight())
			}
			if w := do(l, "192.0.2.1:1", func(r *http.Request) { r.SetBasicAuth("dave", "Hello world!") }); w.Code != 429 {
				t.Fatalf("second request during the session: %d", w.Code)
			}
			conn.Close()
			eventually(t, "the session's slot to free", func() bool { return l.InFlight() == 0 })
		})
	}
}
