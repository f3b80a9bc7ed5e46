package dockerproxy

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Streams pass through as they are written: the first event reaches the
// client while the engine still holds back the second.
func TestStreamsAreNotBuffered(t *testing.T) {
	tests := []struct {
		name   string
		target string
		cfg    Config
	}{
		{"events", "/v1.41/events", Config{}},
		{"followed logs", "/v1.41/containers/c1/logs?follow=1&stdout=1", Config{AllowLogs: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			engine := startFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte(`{"n":1}` + "\n"))
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				_, _ = w.Write([]byte(`{"n":2}` + "\n"))
			})
			tt.cfg.Socket = engine.socket
			addr := serveProxy(t, newProxy(t, tt.cfg))
			rc := dialRaw(t, "tcp", addr)
			if err := rc.c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			rc.send(req("GET", tt.target))
			resp, err := http.ReadResponse(rc.br, nil)
			if err != nil {
				t.Fatalf("read answer: %v", err)
			}
			defer func() { _ = resp.Body.Close() }()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %s", resp.Status)
			}
			lines := bufio.NewReader(resp.Body)
			first, err := lines.ReadString('\n')
			if err != nil {
				t.Fatalf("the first event did not arrive while the engine held the second: %v", err)
			}
			close(release)
			second, err := lines.ReadString('\n')
			if err != nil {
				t.Fatalf("second event: %v", err)
			}
			if strings.TrimSpace(first) != `{"n":1}` || strings.TrimSpace(second) != `{"n":2}` {
				t.Errorf("events %q %q", first, second)
			}
		})
	}
}
