package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/internal/testenv"
)

// promTarget is what Prometheus reports about one scrape target.
type promTarget struct {
	Health    string `json:"health"` // up, down, unknown
	LastError string `json:"lastError"`
	ScrapeURL string `json:"scrapeUrl"`
}

// promTLS is the tls_config of a scrape job; empty CertFile scrapes
// without a client certificate.
type promTLS struct {
	CAFile, CertFile, KeyFile string
}

// prometheus is a real Prometheus server (Debian package prometheus) run
// for one test, scraping one target every second.
type prometheus struct {
	api string // http://127.0.0.1:port
}

// startPrometheus starts Prometheus with one job "leash" scraping
// https://<target>/metrics with tls.
func startPrometheus(t *testing.T, target string, tls promTLS) *prometheus {
	t.Helper()
	bin := testenv.RequireTool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	tlsCfg := fmt.Sprintf("      ca_file: %s\n      server_name: localhost\n      min_version: TLS13\n", tls.CAFile)
	if tls.CertFile != "" {
		tlsCfg += fmt.Sprintf("      cert_file: %s\n      key_file: %s\n", tls.CertFile, tls.KeyFile)
	}
	cfg := "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n" +
		"scrape_configs:\n  - job_name: leash\n    scheme: https\n    tls_config:\n" + tlsCfg +
		"    static_configs:\n      - targets: ['" + target + "']\n"
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	p := &prometheus{api: "http://" + addr}
	eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(p.api + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("prometheus not ready: %s", resp.Status)
		}
		return nil
	})
	return p
}

// target waits until the single target has been scraped at least once
// (health up or down) and returns it.
func (p *prometheus) target(t *testing.T) promTarget {
	t.Helper()
	var got promTarget
	eventually(t, 30*time.Second, func() error {
		var body struct {
			Data struct {
				ActiveTargets []promTarget `json:"activeTargets"`
			} `json:"data"`
		}
		if err := p.get("/api/v1/targets", &body); err != nil {
			return err
		}
		if n := len(body.Data.ActiveTargets); n != 1 {
			return fmt.Errorf("%d active targets, want 1", n)
		}
		got = body.Data.ActiveTargets[0]
		if got.Health == "unknown" || got.Health == "" {
			return fmt.Errorf("target not scraped yet")
		}
		return nil
	})
	return got
}

// query evaluates an instant PromQL query and returns the first sample's
// value, waiting until the query has a result.
func (p *prometheus) query(t *testing.T, q string) string {
	t.Helper()
	var val string
	eventually(t, 30*time.Second, func() error {
		var body struct {
			Status string `json:"status"`
			Data   struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := p.get("/api/v1/query?query="+url.QueryEscape(q), &body); err != nil {
			return err
		}
		if body.Status != "success" || len(body.Data.Result) == 0 {
			return fmt.Errorf("query %q: no result yet", q)
		}
		val = fmt.Sprint(body.Data.Result[0].Value[1])
		return nil
	})
	return val
}

func (p *prometheus) get(path string, v any) error {
	resp, err := http.Get(p.api + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// eventually polls cond until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", timeout, err)
		}
		<-tick.C
	}
}

// freeLoopbackAddr returns a 127.0.0.1 address whose port was free a moment
// ago, for programs that take a listen address and cannot report back.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestPrometheusScrapeTooling checks the Prometheus driver itself against
// the tiny leashtls mTLS server: a prometheus-role certificate scrapes
// (up == 1), and without a client certificate the scrape fails. The
// gateway's own scrape test (in the harness) uses the same driver.
func TestPrometheusScrapeTooling(t *testing.T) {
	p := newPKI(t, "prom")
	server := p.issue(t, "server", ca.IssueRequest{Profile: "server", Hosts: []string{"localhost", "127.0.0.1"}})
	scraper := p.issue(t, "scraper", ca.IssueRequest{Profile: "prometheus", Name: "scraper"})
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE leash_interop_up gauge\nleash_interop_up 1")
	})
	s := startServerWith(t, p, server, metrics)
	target := strings.TrimSuffix(strings.TrimPrefix(s.url, "https://"), "/")

	t.Run("with prometheus cert", func(t *testing.T) {
		prom := startPrometheus(t, target, promTLS{CAFile: p.path("root.pem"), CertFile: scraper.chain, KeyFile: scraper.keyf})
		if tg := prom.target(t); tg.Health != "up" {
			t.Fatalf("target health %q (%s), want up", tg.Health, tg.LastError)
		}
		if v := prom.query(t, `up{job="leash"}`); v != "1" {
			t.Fatalf("up = %s, want 1", v)
		}
		if v := prom.query(t, `leash_interop_up`); v != "1" {
			t.Fatalf("leash_interop_up = %s, want 1", v)
		}
	})
	t.Run("without cert", func(t *testing.T) {
		prom := startPrometheus(t, target, promTLS{CAFile: p.path("root.pem")})
		tg := prom.target(t)
		if tg.Health != "down" || tg.LastError == "" {
			t.Fatalf("target health %q (%q), want down with an error", tg.Health, tg.LastError)
		}
		if v := prom.query(t, `up{job="leash"}`); v != "0" {
			t.Fatalf("up = %s, want 0", v)
		}
	})
}
