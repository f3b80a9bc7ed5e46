package interop

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testharness"
)

// TestPrometheusScrapesGateway: a real Prometheus scrapes the gateway's
// /metrics with a prometheus-role certificate through tls_config, on the
// API listener and on the separate metrics listener; up == 1 and the
// control-plane series are there. Without a certificate the scrape fails
// (up == 0), and other roles are refused on the metrics listener.
func TestPrometheusScrapesGateway(t *testing.T) {
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) { c.MetricsListen = "127.0.0.1:0" }})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "scraped-1")
	testharness.Eventually(t, 10*time.Second, "runner connected", func() bool { return r.Agent.Sessions() > 0 })
	scraper := h.Client(t, ca.ProfilePrometheus, "prom")
	apiTarget := strings.TrimPrefix(gw.APIURL, "https://")
	metricsTarget := gw.Server.MetricsAddr().String()
	withCert := promTLS{CAFile: scraper.CAFile, CertFile: scraper.CertFile, KeyFile: scraper.KeyFile}

	for _, tc := range []struct{ name, target string }{{"api listener", apiTarget}, {"metrics listener", metricsTarget}} {
		t.Run(tc.name, func(t *testing.T) {
			prom := startPrometheus(t, tc.target, withCert)
			if tg := prom.target(t); tg.Health != "up" {
				t.Fatalf("target health %q (%s), want up", tg.Health, tg.LastError)
			}
			if v := prom.query(t, `up{job="leash"}`); v != "1" {
				t.Fatalf("up = %s, want 1", v)
			}
			for q, want := range map[string]string{
				`leash_gateway_runners{status="online"}`:             "1",
				`leash_gateway_enrollments_total{result="ok"}`:       "1",
				`count(leash_gateway_runner_cert_not_after_seconds)`: "1",
			} {
				if v := prom.query(t, q); v != want {
					t.Errorf("%s = %s, want %s", q, v, want)
				}
			}
			notAfter, err := strconv.ParseFloat(prom.query(t, `leash_gateway_runner_cert_not_after_seconds{runner="scraped-1"}`), 64)
			if err != nil || int64(notAfter) != r.Agent.Certificate().NotAfter.Unix() {
				t.Errorf("cert not-after series %v (%v), want %d", notAfter, err, r.Agent.Certificate().NotAfter.Unix())
			}
		})
	}
	t.Run("without a certificate", func(t *testing.T) {
		prom := startPrometheus(t, apiTarget, promTLS{CAFile: scraper.CAFile})
		if tg := prom.target(t); tg.Health != "down" || tg.LastError == "" {
			t.Fatalf("target health %q (%q), want down with an error", tg.Health, tg.LastError)
		}
		if v := prom.query(t, `up{job="leash"}`); v != "0" {
			t.Fatalf("up = %s, want 0", v)
		}
	})
	t.Run("runner certificate on /metrics", func(t *testing.T) {
		runnerClient := h.Client(t, ca.ProfileRunner, "nosy")
		if status, _, err := runnerClient.Raw(http.MethodGet, gw.APIURL+"/metrics", "", nil); err != nil || status != http.StatusForbidden {
			t.Fatalf("runner scraping the API listener: %d %v; want 403", status, err)
		}
		if _, _, err := runnerClient.Raw(http.MethodGet, "https://"+metricsTarget+"/metrics", "", nil); err == nil {
			t.Fatal("metrics listener completed a handshake with a runner certificate")
		}
	})
}
