package dockerproxy

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Every request on a kept-alive connection is decided on its own.
func TestKeepAliveFiltersEachRequest(t *testing.T) {
	requests := []struct {
		raw    string
		status int
	}{
		{req("GET", "/v1.41/containers/json"), http.StatusOK},
		{req("POST", "/v1.41/containers/c1/exec", "Content-Type: application/json", "Content-Length: 2") + "{}", http.StatusForbidden},
		{req("GET", "/v1.41/info"), http.StatusOK},
		{req("DELETE", "/v1.41/containers/c1?force=1"), http.StatusForbidden},
		{req("HEAD", "/_ping"), http.StatusOK},
	}
	want := []string{"GET /v1.41/containers/json", "GET /v1.41/info", "HEAD /_ping"}
	for _, pipelined := range []bool{false, true} {
		t.Run("pipelined="+strconv.FormatBool(pipelined), func(t *testing.T) {
			engine := startFakeEngine(t, nil)
			addr := serveProxy(t, newProxy(t, Config{Socket: engine.socket}))
			rc := dialRaw(t, "tcp", addr)
			if pipelined {
				var all strings.Builder
				for _, r := range requests {
					all.WriteString(r.raw)
				}
				rc.send(all.String())
			}
			for i, r := range requests {
				if !pipelined {
					rc.send(r.raw)
				}
				method, _, _ := strings.Cut(r.raw, " ")
				resp, body := rc.read(method)
				if resp.StatusCode != r.status {
					t.Errorf("request %d: status %s, want %d (%q)", i+1, resp.Status, r.status, body)
				}
				if resp.Close {
					t.Fatalf("request %d: the proxy closed the connection", i+1)
				}
			}
			var got []string
			for _, s := range engine.take() {
				got = append(got, s.Method+" "+s.URI)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("the engine received\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// A request hidden in the body of a refused one, or behind conflicting
// framing, never reaches the engine.
func TestKeepAliveSmuggling(t *testing.T) {
	inner := req("DELETE", "/containers/c1?force=1")
	tests := []struct {
		name string
		raw  string
	}{
		{"request in a refused body",
			req("POST", "/containers/c1/exec", "Content-Length: "+strconv.Itoa(len(inner))) + inner},
		{"Content-Length and chunked, request after the chunks",
			"GET /containers/json HTTP/1.1\r\nHost: docker\r\nContent-Length: " + strconv.Itoa(5+len(inner)) +
				"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + inner},
		{"chunked, request in a chunk",
			"GET /containers/json HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n" +
				strconv.FormatInt(int64(len(inner)), 16) + "\r\n" + inner + "\r\n0\r\n\r\n"},
		{"chunk extension and trailer",
			"GET /containers/json HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n0;x=" + "\r\nX-T: " + "1\r\n\r\n" + inner},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			engine := startFakeEngine(t, nil)
			addr := serveProxy(t, newProxy(t, Config{Socket: engine.socket}))
			rc := dialRaw(t, "tcp", addr)
			rc.send(tt.raw + req("GET", "/info", "Connection: close"))
			// Read every answer until the connection ends: each is the
			// proxy's refusal, a net/http error, or the final /info.
			var statuses []int
			for {
				resp, err := http.ReadResponse(rc.br, nil)
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					break
				}
				if err != nil {
					t.Fatalf("read answer: %v", err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				statuses = append(statuses, resp.StatusCode)
				if resp.Close {
					break
				}
			}
			if len(statuses) == 0 || statuses[0] != http.StatusForbidden {
				t.Errorf("answers %v, want a 403 first", statuses)
			}
			for _, s := range engine.take() {
				if s.URI != "/info" {
					t.Errorf("the engine received %s %s", s.Method, s.URI)
				}
			}
		})
	}
}
