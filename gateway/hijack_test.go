package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestWaitHijacked: the gateway's stop waits for the handlers of
// hijacked connections (http.Server.Shutdown does not), and gives up
// with an error when its context ends first.
func TestWaitHijacked(t *testing.T) {
	var s Server
	dones := make(chan func(), 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, done, err := s.hijack(w)
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close()
		dones <- done // the handler's work goes on after it returns
	}))
	defer srv.Close()
	if resp, err := http.Get(srv.URL); err == nil {
		_ = resp.Body.Close()
	}
	done := <-dones

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.waitHijacked(ctx); err == nil {
		t.Fatal("waitHijacked returned while a hijacked handler was still running")
	}
	done()
	if err := s.waitHijacked(context.Background()); err != nil {
		t.Fatalf("waitHijacked after the handler finished: %v", err)
	}
}
