package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testca"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
	"github.com/leashpki/leash/runner"
)

// app is the web application on the runner's host. It counts the
// connections it accepts in conns.
func app(t *testing.T, sseStep chan struct{}, conns *atomic.Int64) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body) // HTTP/1 handlers read the body before answering
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-For", r.Header.Get("X-Forwarded-For"))
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.Copy(w, io.LimitReader(rand.NewChaCha8([32]byte{7}), 5<<20))
	})
	mux.HandleFunc("GET /sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: event %d\n\n", i)
			http.NewResponseController(w).Flush()
			select {
			case <-sseStep: // the test read this event before the next is sent
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "api route, host %s", r.Host)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// TestHTTPDomain: a web app on the runner's host served through the
// gateway's public listener: large bodies both ways, chunked uploads, SSE
// delivered event by event, WebSocket echo, runner-side routes, client
// policy refusals, and a policy change that leaves a live WebSocket open.
func TestHTTPDomain(t *testing.T) {
	sseStep := make(chan struct{})
	var appConns atomic.Int64
	backend := app(t, sseStep, &appConns)
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) {
		c.PublicListen = "127.0.0.1:0"
		c.PublicTLSListen = "127.0.0.1:0"
	}})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "web-1", testharness.RunnerOptions{Domains: map[string][]runner.Route{
		"app.test": {{Target: backend.URL, Path: "^/api/", Host: "internal.app"}, {Target: backend.URL}},
		// One catch-all route: the runner splices streams to the app
		// instead of proxying each request again.
		"pass.test": {{Target: backend.URL}},
	}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 })
	op := h.Client(t, ca.ProfileOperator, "alice")
	setDomain := func(policy string) {
		t.Helper()
		body := `{"runner":"web-1","policy":` + policy + `}`
		if status, answer, err := op.Raw(http.MethodPut, gw.APIURL+"/v1/domains/app.test", "application/json", body); err != nil || status != http.StatusOK {
			t.Fatalf("set domain: %d %s %v", status, answer, err)
		}
	}
	setDomain(`{"max_body_bytes": 16777216}`)
	if status, answer, err := op.Raw(http.MethodPut, gw.APIURL+"/v1/domains/pass.test", "application/json", `{"runner":"web-1"}`); err != nil || status != http.StatusOK {
		t.Fatalf("set domain: %d %s %v", status, answer, err)
	}

	public := gw.Server.PublicAddr().String()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", public)
	}}}
	t.Cleanup(client.CloseIdleConnections)
	for _, host := range []string{"app.test", "pass.test"} {
		t.Run(host, func(t *testing.T) { domainTraffic(t, client, "http://"+host, sseStep, &appConns) })
	}
	url := "http://app.test"

	t.Run("runner-side route with host override", func(t *testing.T) {
		resp, err := client.Get(url + "/api/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != "api route, host internal.app" {
			t.Fatalf("api route: %q", b)
		}
	})

	// A WebSocket stays open across a policy change that would refuse it
	// if it started now.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://app.test/ws", &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		t.Fatalf("websocket through the domain: %v", err)
	}
	defer ws.CloseNow()
	echo := func(msg string) {
		t.Helper()
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := ws.Read(ctx); err != nil || string(got) != msg {
			t.Fatalf("websocket echo %q: %q %v", msg, got, err)
		}
	}
	echo("before")
	setDomain(`{"credentials":[{"user":"ann","hash":"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"}],"max_body_bytes":1024}`)
	testharness.Eventually(t, 5*time.Second, "new policy in force", func() bool {
		resp, err := client.Get(url + "/api/x")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized
	})
	echo("after the policy change")

	// Policy refusals, and stealth.
	req, _ := http.NewRequest(http.MethodPost, url+"/echo", strings.NewReader(strings.Repeat("x", 2048)))
	req.SetBasicAuth("ann", "Hello world!")
	if resp, err := client.Do(req); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %v %v", err, resp)
	} else {
		_ = resp.Body.Close()
	}
	setDomain(`{"allow_cidrs":["10.0.0.0/8"],"stealth":true}`)
	testharness.Eventually(t, 5*time.Second, "stealth refusal", func() bool {
		resp, err := client.Get(url + "/api/x")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	})
	resp, err := client.Get("http://unknown.test/")
	if err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown host: %v %v", err, resp)
	}
	_ = resp.Body.Close()

	// HTTPS: a certificate for the served domain from the embedded CA,
	// issued at the first handshake; none for anything else.
	roots := x509.NewCertPool()
	roots.AddCert(h.CA.Root())
	conn, err := tls.Dial("tcp", gw.Server.PublicTLSAddr().String(), &tls.Config{ServerName: "app.test", RootCAs: roots})
	if err != nil {
		t.Fatalf("https for app.test: %v", err)
	}
	_ = conn.Close()
	if c, err := tls.Dial("tcp", gw.Server.PublicTLSAddr().String(), &tls.Config{ServerName: "other.test", RootCAs: roots}); err == nil {
		_ = c.Close()
		t.Fatal("a certificate was issued for a domain that is not served")
	}

	var list protocol.DomainList
	if status := op.Do(t, http.MethodGet, gw.APIURL+"/v1/domains", nil, &list); status != http.StatusOK || len(list.Domains) != 2 {
		t.Fatalf("domain list: %d %+v", status, list)
	}
	i := slices.IndexFunc(list.Domains, func(d protocol.Domain) bool { return d.Name == "app.test" })
	var pol map[string]any
	if i >= 0 {
		_ = json.Unmarshal(list.Domains[i].Policy, &pol)
	}
	if pol["stealth"] != true {
		t.Errorf("listed domains %+v: app.test's policy %v", list.Domains, pol)
	}
}

// domainTraffic sends the app's traffic kinds through a domain: a large
// download, small uploads in turn on one kept-alive path, a chunked upload
// echoed back, server-sent events one by one and a WebSocket echo.
func domainTraffic(t *testing.T, client *http.Client, url string, sseStep chan struct{}, appConns *atomic.Int64) {
	t.Run("large download", func(t *testing.T) {
		resp, err := client.Get(url + "/big")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		got := sha256.New()
		n, _ := io.Copy(got, resp.Body)
		want := sha256.New()
		_, _ = io.Copy(want, io.LimitReader(rand.NewChaCha8([32]byte{7}), 5<<20))
		if n != 5<<20 || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Fatalf("downloaded %d bytes, digest equal %v", n, bytes.Equal(got.Sum(nil), want.Sum(nil)))
		}
	})
	t.Run("small uploads reuse one stream", func(t *testing.T) {
		before := appConns.Load()
		for i := range 30 {
			payload := bytes.Repeat([]byte{byte('a' + i%26)}, 1000+i)
			resp, err := client.Post(url+"/echo", "application/octet-stream", bytes.NewReader(payload))
			if err != nil {
				t.Fatal(err)
			}
			back, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Equal(back, payload) {
				t.Fatalf("upload %d: %d, %d bytes back", i, resp.StatusCode, len(back))
			}
		}
		// The gateway keeps its tunnel stream, the runner its connection
		// to the app: at most the first upload needed a new one.
		if n := appConns.Load() - before; n > 1 {
			t.Errorf("30 uploads in turn opened %d connections to the app, want at most 1", n)
		}
	})
	t.Run("chunked upload echo", func(t *testing.T) {
		payload := bytes.Repeat([]byte("0123456789abcdef"), 512<<10) // 8 MiB
		pr, pw := io.Pipe()
		go func() {
			for chunk := range slices.Chunk(payload, 100_000) {
				_, _ = pw.Write(chunk)
			}
			_ = pw.Close()
		}()
		resp, err := client.Post(url+"/echo", "application/octet-stream", pr) // no length: chunked
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		back, _ := io.ReadAll(resp.Body)
		if !bytes.Equal(back, payload) || resp.Header.Get("X-Seen-Host") != strings.TrimPrefix(url, "http://") || resp.Header.Get("X-Seen-For") != "127.0.0.1" {
			t.Fatalf("echo: %d bytes, host %q, for %q", len(back), resp.Header.Get("X-Seen-Host"), resp.Header.Get("X-Seen-For"))
		}
	})
	t.Run("server-sent events arrive one by one", func(t *testing.T) {
		resp, err := client.Get(url + "/sse")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		br := bufio.NewReader(resp.Body)
		for i := range 3 {
			line, err := br.ReadString('\n')
			if err != nil || line != fmt.Sprintf("data: event %d\n", i) {
				t.Fatalf("event %d: %q %v", i, line, err)
			}
			_, _ = br.ReadString('\n')
			sseStep <- struct{}{} // the app sends the next only now: nothing was buffered
		}
	})

	t.Run("websocket echo", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1)+"/ws", &websocket.DialOptions{HTTPClient: client})
		if err != nil {
			t.Fatalf("websocket through the domain: %v", err)
		}
		defer ws.CloseNow()
		ws.SetReadLimit(1 << 20)
		for _, msg := range []string{"one", strings.Repeat("big", 100_000)} {
			if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			if _, got, err := ws.Read(ctx); err != nil || string(got) != msg {
				t.Fatalf("websocket echo of %d bytes: %d bytes back, %v", len(msg), len(got), err)
			}
		}
	})
}

// TestHTTPDomainWriteTimeout: a domain's write timeout cuts a response that
// takes longer, on the shared public listener.
func TestHTTPDomainWriteTimeout(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < 50; i++ {
			fmt.Fprintf(w, "tick %d\n", i)
			http.NewResponseController(w).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond): // the response is slow on purpose
			}
		}
	}))
	defer slow.Close()
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) { c.PublicListen = "127.0.0.1:0" }})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "web-2", testharness.RunnerOptions{Domains: map[string][]runner.Route{"slow.test": {{Target: slow.URL}}}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 })
	op := h.Client(t, ca.ProfileOperator, "alice")
	if status, answer, err := op.Raw(http.MethodPut, gw.APIURL+"/v1/domains/slow.test", "application/json",
		`{"runner":"web-2","policy":{"write_timeout":"1s"}}`); err != nil || status != http.StatusOK {
		t.Fatalf("set domain: %d %s %v", status, answer, err)
	}
	conn, err := net.Dial("tcp", gw.Server.PublicAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	start := time.Now()
	_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: slow.test\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	body, _ := io.ReadAll(conn)
	if took := time.Since(start); took > 4*time.Second || strings.Contains(string(body), "tick 49") {
		t.Fatalf("a 5s response lasted %s with a 1s write timeout (got %d bytes)", took, len(body))
	}
}

// TestHTTPDomainCertificateFiles: a certificate file covering a domain
// (here from another CA, as a public CA's would be) is chosen by SNI; a
// served domain without a file gets one from the embedded CA.
func TestHTTPDomainCertificateFiles(t *testing.T) {
	public := testca.New(t, testca.WithName("Public CA"))
	leaf := public.Issue(t, testca.LeafOptions{CommonName: "files.test", DNSNames: []string{"files.test", "*.files.test"}})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "files.crt"), filepath.Join(dir, "files.key")
	if err := os.WriteFile(certFile, leaf.ChainPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, leaf.KeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Host) }))
	defer backend.Close()
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) {
		c.PublicTLSListen = "127.0.0.1:0"
		c.PublicCerts = []string{certFile + ":" + keyFile}
	}})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "web-3", testharness.RunnerOptions{Domains: map[string][]runner.Route{
		"www.files.test": {{Target: backend.URL}}, "own.test": {{Target: backend.URL}}}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 })
	op := h.Client(t, ca.ProfileOperator, "alice")
	for _, d := range []string{"www.files.test", "own.test"} {
		if status, answer, err := op.Raw(http.MethodPut, gw.APIURL+"/v1/domains/"+d, "application/json", `{"runner":"web-3"}`); err != nil || status != http.StatusOK {
			t.Fatalf("set %s: %d %s %v", d, status, answer, err)
		}
	}
	ownRoots := x509.NewCertPool()
	ownRoots.AddCert(h.CA.Root())
	for _, tc := range []struct {
		name  string
		roots *x509.CertPool
	}{{"www.files.test", public.Pool()}, {"own.test", ownRoots}} {
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: tc.roots},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", gw.Server.PublicTLSAddr().String())
			}}}
		resp, err := client.Get("https://" + tc.name + "/")
		if err != nil {
			t.Fatalf("%s over https: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		client.CloseIdleConnections()
		if string(b) != tc.name {
			t.Fatalf("%s: %q", tc.name, b)
		}
	}
}

// TestDomainsDirectory: domains kept as files (GitOps) are served, changed
// and removed with their files; the API cannot change them; a bad file is
// refused without touching the others.
func TestDomainsDirectory(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok "+r.Host) }))
	defer backend.Close()
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.test.yaml", "runner: web-4\n")
	write("broken.yaml", "runner: web-4\npolicy: {allow_cidrz: [10.0.0.0/8]}\n")
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) {
		c.PublicListen = "127.0.0.1:0"
		c.DomainsDir = dir
	}})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "web-4", testharness.RunnerOptions{Domains: map[string][]runner.Route{
		"a.test": {{Target: backend.URL}}, "b.test": {{Target: backend.URL}}}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 })
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", gw.Server.PublicAddr().String())
	}}}
	defer client.CloseIdleConnections()
	status := func(host string) int {
		resp, err := client.Get("http://" + host + "/")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("a.test"); got != http.StatusOK {
		t.Fatalf("a.test from its file: %d", got)
	}
	op := h.Client(t, ca.ProfileOperator, "alice")
	if st, answer, _ := op.Raw(http.MethodPut, gw.APIURL+"/v1/domains/a.test", "application/json", `{"runner":"web-4","policy":{"stealth":true}}`); st != http.StatusConflict {
		t.Fatalf("API changed a file-managed domain: %d %s", st, answer)
	}
	write("b.yaml", "name: b.test\nrunner: web-4\npolicy:\n  allow_cidrs: [10.0.0.0/8]\n  stealth: true\n")
	testharness.Eventually(t, 10*time.Second, "b.test from a new file, with its policy", func() bool { return status("b.test") == http.StatusNotFound && len(listDomains(t, op, gw)) == 2 })
	write("b.yaml", "name: b.test\nrunner: web-4\n")
	testharness.Eventually(t, 10*time.Second, "b.test policy changed in its file", func() bool { return status("b.test") == http.StatusOK })
	if err := os.Remove(filepath.Join(dir, "a.test.yaml")); err != nil {
		t.Fatal(err)
	}
	testharness.Eventually(t, 10*time.Second, "a.test removed with its file", func() bool { return status("a.test") == http.StatusNotFound })
	if names := listDomains(t, op, gw); len(names) != 1 || names[0] != "b.test" {
		t.Fatalf("domains now: %v", names)
	}
}

func listDomains(t *testing.T, op *testharness.Client, gw *testharness.Gateway) []string {
	var list protocol.DomainList
	op.Do(t, http.MethodGet, gw.APIURL+"/v1/domains", nil, &list)
	var names []string
	for _, d := range list.Domains {
		names = append(names, d.Name)
	}
	return names
}
