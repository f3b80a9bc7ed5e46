package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
	"github.com/leashpki/leash/runner"
)

// TestDomainCommands: domain set (with a YAML policy), list and rm against
// a real gateway, checked through its public listener.
func TestDomainCommands(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello from "+r.Host)
	}))
	defer backend.Close()
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) { c.PublicListen = "127.0.0.1:0" }})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "web-1", testharness.RunnerOptions{Domains: map[string][]runner.Route{"shop.test": {{Target: backend.URL}}}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 })

	dir := t.TempDir()
	op := h.Client(t, ca.ProfileOperator, "alice")
	cfg := filepath.Join(dir, "config.yaml")
	mustLeash(t, "login", "--config", cfg, "--cert", op.CertFile, "--key", op.KeyFile, "--ca", op.CAFile, gw.APIURL)
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte("max_body_bytes: 1024\nallow_cidrs: [127.0.0.0/8]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("allow_cidrs: [not-a-network]\nmax_concurent: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := leash(t, "domain", "set", "--config", cfg, "--runner", "web-1", "--policy-file", bad, "shop.test"); code == 0 || !strings.Contains(errOut, "max_concurent") {
		t.Fatalf("bad policy accepted: exit %d %s", code, errOut)
	}
	mustLeash(t, "domain", "set", "--config", cfg, "--runner", "web-1", "--policy-file", policy, "shop.test")

	var list protocol.DomainList
	if err := json.Unmarshal([]byte(mustLeash(t, "domain", "list", "--config", cfg, "--json")), &list); err != nil || len(list.Domains) != 1 || list.Domains[0].Runner != "web-1" {
		t.Fatalf("domain list: %v %+v", err, list)
	}
	public := gw.Server.PublicAddr().String()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", public)
	}}}
	defer client.CloseIdleConnections()
	get := func() (int, string) {
		resp, err := client.Get("http://shop.test/")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(); status != http.StatusOK || body != "hello from shop.test" {
		t.Fatalf("through the domain: %d %q", status, body)
	}
	mustLeash(t, "domain", "rm", "--config", cfg, "shop.test")
	if status, _ := get(); status != http.StatusNotFound {
		t.Fatalf("removed domain still served: %d", status)
	}
	if code, _, _ := leash(t, "domain", "rm", "--config", cfg, "shop.test"); code == 0 {
		t.Fatal("removing a missing domain succeeded")
	}
}
