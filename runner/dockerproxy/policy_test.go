package dockerproxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// policyConfig is the configuration the bypass table runs against: logs
// off, two writes allowed.
var policyConfig = Config{AllowedWrites: []string{"POST /containers/{id}/restart", "POST /containers/{id}/kill"}}

// forbiddenEndpoints are refused whatever the version prefix.
var forbiddenEndpoints = []string{
	"POST /containers/create",
	"DELETE /containers/c1",
	"DELETE /containers/c1?force=1&v=1",
	"POST /containers/c1/exec",
	"POST /exec/e1/start",
	"GET /exec/e1/json",
	"POST /containers/c1/attach?stream=1&stdin=1&stdout=1",
	"GET /containers/c1/attach/ws?stream=1",
	"GET /containers/c1/archive?path=/etc/shadow",
	"HEAD /containers/c1/archive?path=/etc/shadow",
	"PUT /containers/c1/archive?path=/",
	"GET /containers/c1/export",
	"GET /images/get?names=alpine",
	"GET /images/alpine/get",
	"GET /images/alpine/json",
	"GET /secrets",
	"GET /secrets/s1",
	"POST /secrets/create",
	"GET /swarm",
	"GET /swarm/unlockkey",
	"POST /swarm/init",
	"POST /swarm/leave?force=1",
	"GET /plugins",
	"POST /plugins/pull?remote=x",
	"POST /build",
	"POST /commit?container=c1",
	"POST /session",
	"POST /grpc",
	"POST /containers/c1/stop",
	"POST /containers/c1/start",
	"POST /containers/c1/update",
	"POST /containers/c1/rename?name=x",
	"POST /containers/c1/wait",
	"POST /containers/c1/resize?h=1&w=1",
	"POST /containers/prune",
	"GET /containers/c1/logs?stdout=1",
	"GET /containers/c1/top",
	"GET /containers/c1/changes",
	"GET /containers/c1/stats",
	"POST /images/create?fromImage=alpine",
	"POST /images/load",
	"DELETE /images/alpine",
	"POST /volumes/create",
	"DELETE /volumes/v1",
	"POST /networks/create",
	"POST /networks/n1/connect",
	"POST /auth",
	"GET /system/df",
	"GET /distribution/alpine/json",
	"GET /nodes",
	"GET /services",
	"GET /configs",
	"GET /tasks",
}

// forbidden lists requests refused by the handler (403), beyond the
// endpoints above.
var forbidden = []struct{ name, raw string }{
	// methods: exact and upper-case, and the right one for the route
	{"lower-case method", req("get", "/containers/json")},
	{"mixed-case method", req("Get", "/containers/json")},
	{"POST on a read", req("POST", "/containers/json")},
	{"PUT on a read", req("PUT", "/containers/json")},
	{"DELETE ping", req("DELETE", "/_ping")},
	{"PATCH", req("PATCH", "/containers/c1/json")},
	{"OPTIONS", req("OPTIONS", "/containers/json")},
	{"TRACE", req("TRACE", "/containers/json")},
	{"HEAD on an allowed write", req("HEAD", "/containers/c1/restart")},
	{"GET on an allowed write", req("GET", "/containers/c1/restart")},
	{"lower-case POST on an allowed write", req("post", "/containers/c1/restart")},
	// case: Docker's routes are case-sensitive
	{"Containers", req("GET", "/Containers/json")},
	{"CONTAINERS/JSON", req("GET", "/CONTAINERS/JSON")},
	{"containers/JSON", req("GET", "/containers/JSON")},
	{"upper-case version", req("GET", "/V1.41/containers/json")},
	{"_PING", req("GET", "/_PING")},
	// dot segments resolve to a forbidden path
	{"dots to exec", req("POST", "/containers/json/../c1/exec")},
	{"dots to secrets", req("GET", "/v1.41/containers/c1/json/../../../secrets")},
	{"dots to unlock key", req("GET", "/_ping/../swarm/unlockkey")},
	{"dots to image save", req("GET", "/images/json/../alpine/get")},
	{"dots to container root", req("GET", "/containers/c1/json/..")},
	{"dot to secrets", req("GET", "/./secrets")},
	{"dots above the root", req("GET", "/v1.41/../../secrets")},
	// percent-encoding: decoded once, and only once
	{"encoded slash", req("POST", "/containers/c1%2fexec")},
	{"encoded slash upper", req("GET", "/containers%2Fjson")},
	{"encoded slash after version", req("GET", "/v1.41%2fcontainers/json")},
	{"encoded backslash", req("GET", "/containers/c1%5cjson")},
	{"encoded letters to exec", req("POST", "/%63ontainers/c1/%65xec")},
	{"encoded dots to secrets", req("GET", "/containers/c1/%2e%2e/%2e%2e/secrets")},
	{"encoded dots above the root", req("GET", "/%2e%2e/secrets")},
	{"double-encoded slash", req("GET", "/containers/json%252F..%252Fsecrets")},
	{"double-encoded dots", req("GET", "/containers/c1/%252e%252e/json")},
	{"encoded NUL", req("GET", "/containers/json%00")},
	{"encoded space", req("GET", "/containers/c1%20/json")},
	{"encoded newline", req("GET", "/containers/c1%0a/json")},
	{"non-ASCII", req("GET", "/containers/%C3%A9/json")},
	{"backslashes", req("GET", `/containers\c1\json`)},
	// repeated and trailing slashes resolve to a forbidden path
	{"double slash exec", req("POST", "//containers/c1/exec")},
	{"triple slash image save", req("GET", "///images/get")},
	{"inner double slashes", req("POST", "/containers//c1//exec")},
	{"trailing slash exec", req("POST", "/containers/c1/exec/")},
	{"trailing slash secrets", req("GET", "/secrets/")},
	// version prefixes
	{"two versions", req("GET", "/v1.41/v1.41/containers/json")},
	{"major-only version", req("GET", "/v1/containers/json")},
	{"three-part version", req("GET", "/v1.41.1/containers/json")},
	{"letters for a version", req("GET", "/vx.y/containers/json")},
	{"huge version", req("GET", "/v99999.1/containers/json")},
	{"version alone", req("GET", "/v1.41")},
	{"root", req("GET", "/")},
	{"version root", req("GET", "/v1.41/")},
	// path parameters must look like Docker names
	{"dash name", req("GET", "/containers/-rf/json")},
	{"colon name", req("GET", "/containers/a:b/json")},
	{"dot name", req("GET", "/containers/.hidden/json")},
	{"tilde name", req("GET", "/containers/a~b/json")},
	{"semicolon name", req("GET", "/containers/c1;exec/json")},
	// method overrides
	{"X-HTTP-Method-Override", req("GET", "/containers/json", "X-HTTP-Method-Override: DELETE")},
	{"x-http-method-override lower", req("GET", "/containers/json", "x-http-method-override: DELETE")},
	{"X-HTTP-Method", req("GET", "/containers/json", "X-HTTP-Method: POST")},
	{"X-Method-Override", req("GET", "/containers/json", "X-Method-Override: PUT")},
	{"empty override", req("GET", "/containers/json", "X-HTTP-Method-Override:")},
	{"_method parameter", req("GET", "/containers/json?_method=DELETE")},
	// protocol upgrades (hijacked connections)
	{"Upgrade tcp", req("GET", "/containers/json", "Upgrade: tcp", "Connection: Upgrade")},
	{"Connection: Upgrade alone", req("GET", "/containers/json", "Connection: Upgrade")},
	{"Connection list with upgrade", req("GET", "/info", "Connection: keep-alive, UPGRADE")},
	{"Upgrade alone", req("GET", "/info", "Upgrade: tcp")},
	{"attach upgrade", req("POST", "/containers/c1/attach?stream=1", "Upgrade: tcp", "Connection: Upgrade")},
	{"grpc h2c", req("POST", "/grpc", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA")},
	{"events websocket", req("GET", "/events", "Upgrade: websocket", "Connection: Upgrade")},
	{"allowed write upgrade", req("POST", "/containers/c1/restart", "Upgrade: tcp", "Connection: Upgrade")},
	// bodies: no allowed request has one
	{"GET with a body", "GET /containers/json HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\n\r\n{}"},
	{"allowed write with a body", "POST /containers/c1/restart HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"},
	{"GET chunked", "GET /containers/json HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"allowed write chunked", "POST /containers/c1/restart HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"},
	{"Content-Length and Transfer-Encoding", "GET /containers/json HTTP/1.1\r\nHost: docker\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"zero Content-Length and chunked", "POST /containers/c1/restart HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	// queries
	{"semicolon query", req("GET", "/containers/json?all=1;filters=x")},
	{"bad escape in query", req("GET", "/containers/json?all=%zz")},
	{"parameter not allowed on kill", req("POST", "/containers/c1/kill?t=1")},
	{"extra parameter on restart", req("POST", "/containers/c1/restart?t=1&x=2")},
	{"checkpoint on restart", req("POST", "/containers/c1/restart?checkpoint=cp&checkpoint-dir=/etc")},
	// request target forms
	{"absolute-form to docker", req("GET", "http://docker/containers/json")},
	{"absolute-form elsewhere", req("GET", "http://evil.example/containers/json")},
	{"absolute-form https", req("GET", "https://docker/_ping")},
	{"absolute-form write", req("POST", "http://docker/containers/c1/restart")},
	{"authority-form CONNECT", req("CONNECT", "docker:2375")},
}

// refusedByNetHTTP are answered by net/http itself, before the handler:
// not the proxy's 403, but never forwarded either.
var refusedByNetHTTP = []struct {
	name, raw string
	status    int
}{
	{"OPTIONS *", req("OPTIONS", "*"), http.StatusOK},
	{"Transfer-Encoding identity", "GET /containers/json HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: identity\r\n\r\n", http.StatusNotImplemented},
	{"two different Content-Lengths", "GET /containers/json HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello", http.StatusBadRequest},
	{"raw NUL in the target", req("GET", "/containers/json\x00/../../secrets"), http.StatusBadRequest},
	{"raw space in the target", req("GET", "/containers/json /secrets"), http.StatusBadRequest},
	{"two Host headers", "GET /containers/json HTTP/1.1\r\nHost: docker\r\nHost: evil\r\n\r\n", http.StatusBadRequest},
}

func TestPolicyRefusesBypassesWithoutForwarding(t *testing.T) {
	engine := startFakeEngine(t, nil)
	addr := serveProxy(t, newProxy(t, Config{Socket: engine.socket, AllowedWrites: policyConfig.AllowedWrites}))

	type row struct{ name, raw string }
	var rows []row
	for _, e := range forbiddenEndpoints {
		method, target, _ := strings.Cut(e, " ")
		rows = append(rows, row{e, req(method, target)}, row{e + " (versioned)", req(method, "/v1.41"+target)})
	}
	for _, f := range forbidden {
		rows = append(rows, row{f.name, f.raw})
	}
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, addr, tt.raw)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("status %s, want 403 (body %q)", resp.Status, body)
			}
			if resp.Request.Method != http.MethodHead {
				var msg struct{ Message string }
				if err := json.Unmarshal([]byte(body), &msg); err != nil || !strings.HasPrefix(msg.Message, "leash docker proxy: ") {
					t.Errorf("body %q is not Docker's error shape with the proxy's message", body)
				}
				if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
			}
			if got := engine.take(); len(got) != 0 {
				t.Errorf("the engine received %d request(s): %+v", len(got), got)
			}
		})
	}
	for _, tt := range refusedByNetHTTP {
		t.Run("net/http "+tt.name, func(t *testing.T) {
			resp, body := do(t, addr, tt.raw)
			if resp.StatusCode != tt.status {
				t.Errorf("status %s, want %d (body %q)", resp.Status, tt.status, body)
			}
			if got := engine.take(); len(got) != 0 {
				t.Errorf("the engine received %d request(s): %+v", len(got), got)
			}
		})
	}
}

func TestPolicyForwardsCanonicalForm(t *testing.T) {
	tests := []struct {
		name, raw string
		want      string // the request target the engine must see
	}{
		{"ping", req("GET", "/_ping"), "/_ping"},
		{"HEAD ping", req("HEAD", "/_ping"), "/_ping"},
		{"versioned ping", req("GET", "/v1.41/_ping"), "/v1.41/_ping"},
		{"version", req("GET", "/v1.41/version"), "/v1.41/version"},
		{"info", req("GET", "/info"), "/info"},
		{"events", req("GET", "/v1.41/events?since=0&filters=%7B%7D"), "/v1.41/events?filters=%7B%7D&since=0"},
		{"containers", req("GET", "/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"),
			"/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"},
		{"repeated and trailing slashes", req("GET", "//v1.41//containers//json/"), "/v1.41/containers/json"},
		{"inspect", req("GET", "/v1.41/containers/c1/json"), "/v1.41/containers/c1/json"},
		{"HEAD inspect", req("HEAD", "/containers/0123abcd/json"), "/containers/0123abcd/json"},
		{"dots inside allowed", req("GET", "/v1.41/containers/c1/../c2/json"), "/v1.41/containers/c2/json"},
		{"dot segment", req("GET", "/v1.41/./images/json"), "/v1.41/images/json"},
		{"dots over the version", req("GET", "/v1.40/../v1.41/info"), "/v1.41/info"},
		{"encoded letter", req("GET", "/%63ontainers/json"), "/containers/json"},
		{"images", req("GET", "/images/json?all=1"), "/images/json?all=1"},
		{"networks", req("GET", "/networks"), "/networks"},
		{"network", req("GET", "/v1.41/networks/bridge"), "/v1.41/networks/bridge"},
		{"volumes", req("GET", "/volumes"), "/volumes"},
		{"volume", req("GET", "/volumes/data_1.x-y"), "/volumes/data_1.x-y"},
		{"allowed restart", req("POST", "/v1.41/containers/c1/restart?t=5"), "/v1.41/containers/c1/restart?t=5"},
		{"allowed kill with Content-Length 0", req("POST", "/containers/c1/kill?signal=KILL", "Content-Length: 0"), "/containers/c1/kill?signal=KILL"},
		{"HTTP/1.0", "GET /info HTTP/1.0\r\n\r\n", "/info"},
		{"other Host", req("GET", "/info", "Host: evil.example:2375"), "/info"},
	}
	engine := startFakeEngine(t, nil)
	addr := serveProxy(t, newProxy(t, Config{Socket: engine.socket, AllowedWrites: policyConfig.AllowedWrites}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, addr, tt.raw)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %s, want 200 (body %q)", resp.Status, body)
			}
			got := engine.take()
			if len(got) != 1 {
				t.Fatalf("the engine received %d requests, want 1: %+v", len(got), got)
			}
			method, _, _ := strings.Cut(tt.raw, " ")
			if got[0].Method != method || got[0].URI != tt.want {
				t.Errorf("the engine received %s %s, want %s %s", got[0].Method, got[0].URI, method, tt.want)
			}
			if got[0].Host != "docker" {
				t.Errorf("the engine received Host %q, want docker", got[0].Host)
			}
			if got[0].Body != "" {
				t.Errorf("the engine received a body %q", got[0].Body)
			}
		})
	}
}

func TestPolicyLogsOnlyWhenAllowed(t *testing.T) {
	engine := startFakeEngine(t, nil)
	off := serveProxy(t, newProxy(t, Config{Socket: engine.socket}))
	on := serveProxy(t, newProxy(t, Config{Socket: engine.socket, AllowLogs: true}))
	target := "/v1.41/containers/c1/logs?follow=1&stdout=1"

	resp, body := do(t, off, req("GET", target))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "allow_logs") {
		t.Errorf("logs with AllowLogs off: %s %q, want 403 naming allow_logs", resp.Status, body)
	}
	if got := engine.take(); len(got) != 0 {
		t.Errorf("the engine received %+v", got)
	}
	resp, _ = do(t, on, req("GET", target))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("logs with AllowLogs on: %s, want 200", resp.Status)
	}
	if got := engine.take(); len(got) != 1 || got[0].URI != "/v1.41/containers/c1/logs?follow=1&stdout=1" {
		t.Errorf("the engine received %+v", got)
	}
	// Logs do not open anything else.
	for _, raw := range []string{req("POST", "/containers/c1/logs"), req("GET", "/containers/c1/attach/ws")} {
		if resp, _ := do(t, on, raw); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%q with AllowLogs on: %s, want 403", raw, resp.Status)
		}
	}
	if got := engine.take(); len(got) != 0 {
		t.Errorf("the engine received %+v", got)
	}
}

func TestPolicyHeadersToEngine(t *testing.T) {
	engine := startFakeEngine(t, nil)
	addr := serveProxy(t, newProxy(t, Config{Socket: engine.socket}))
	resp, _ := do(t, addr, req("GET", "/info",
		"X-Forwarded-For: 10.0.0.1", "Forwarded: for=10.0.0.1", "Connection: keep-alive, X-Hop",
		"X-Hop: secret", "Keep-Alive: timeout=5", "Proxy-Authorization: Basic eA==", "Accept-Encoding: gzip",
		"TE: gzip", "User-Agent: Docker-Client/28"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	got := engine.take()
	if len(got) != 1 {
		t.Fatalf("the engine received %+v", got)
	}
	h := got[0].Header
	for _, name := range []string{"X-Forwarded-For", "X-Hop", "Keep-Alive", "Proxy-Authorization", "Accept-Encoding", "Te", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v, ok := h[name]; ok {
			t.Errorf("the engine received %s: %q", name, v)
		}
	}
	if ua := h.Get("User-Agent"); ua != "Docker-Client/28" {
		t.Errorf("User-Agent %q, want the client's", ua)
	}

	// net/http folds an obsolete continuation line into the header before
	// it; the "Upgrade" in it is part of X-A's value, on one line.
	resp, _ = do(t, addr, "GET /info HTTP/1.1\r\nHost: docker\r\nX-A: a\r\n Upgrade: tcp\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("folded header: status %s", resp.Status)
	}
	got = engine.take()
	if len(got) != 1 {
		t.Fatalf("the engine received %+v", got)
	}
	if _, ok := got[0].Header["Upgrade"]; ok {
		t.Errorf("a folded line reached the engine as an Upgrade header: %q", got[0].Header)
	}
}

func TestPolicyDirectHandlerCalls(t *testing.T) {
	// A tunnel may hand the proxy requests it built itself (RequestURI
	// empty) or behind http.StripPrefix; the policy holds for those too.
	engine := startFakeEngine(t, nil)
	p := newProxy(t, Config{Socket: engine.socket})
	t.Cleanup(p.CloseIdleConnections)
	tests := []struct {
		name   string
		r      *http.Request
		h      http.Handler
		status int
	}{
		{"built request, allowed", mustRequest(t, "GET", "http://docker/info"), p, http.StatusOK},
		{"built request, encoded slash", mustRequest(t, "GET", "http://docker/containers%2Fjson"), p, http.StatusForbidden},
		{"built absolute URL", withURI(mustRequest(t, "GET", "http://evil.example/info"), "http://evil.example/info"), p, http.StatusForbidden},
		{"strip prefix, allowed", withURI(mustRequest(t, "GET", "http://docker/docker/info"), "/docker/info"), http.StripPrefix("/docker", p), http.StatusOK},
		{"strip prefix, exec", withURI(mustRequest(t, "POST", "http://docker/docker/containers/c1/exec"), "/docker/containers/c1/exec"), http.StripPrefix("/docker", p), http.StatusForbidden},
		{"Content-Length header and Transfer-Encoding", withBoth(mustRequest(t, "GET", "http://docker/info")), p, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tt.h.ServeHTTP(w, tt.r)
			if w.Code != tt.status {
				t.Errorf("status %d, want %d (%s)", w.Code, tt.status, w.Body.String())
			}
			got := engine.take()
			if tt.status == http.StatusOK && len(got) != 1 || tt.status != http.StatusOK && len(got) != 0 {
				t.Errorf("the engine received %+v", got)
			}
		})
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// withURI makes r look read by a server: target as its request line's.
func withURI(r *http.Request, target string) *http.Request {
	r.RequestURI = target
	if strings.HasPrefix(target, "/") {
		r.URL.Scheme, r.URL.Host = "", ""
	}
	return r
}

// withBoth gives r both framings, as a server that kept both would.
func withBoth(r *http.Request) *http.Request {
	r.Header.Set("Content-Length", "0")
	r.TransferEncoding = []string{"chunked"}
	return r
}
