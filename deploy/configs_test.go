package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testenv"
)

// writeCertPair writes a self-signed ECDSA certificate and its key as
// dir/name.crt and dir/name.key: enough for tools that load certificates
// while checking a config (nginx -t, promtool check config).
func writeCertPair(t *testing.T, dir, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rewrite copies src to dst with every old→new replacement applied, and
// fails if an old string is not in src (the placeholder moved: update the
// test with the file).
func rewrite(t *testing.T, src, dst string, oldNew ...string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("%s no longer contains %q", src, oldNew[i])
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPrometheus: promtool accepts the scrape config (with its certificate
// files present) and the alert rules, and the alerts' unit tests pass:
// runner offline, certificate expiring, renewal failures, gateway down.
func TestPrometheus(t *testing.T) {
	promtool := testenv.RequireTool(t, "promtool", "prometheus")
	dir := t.TempDir()
	for _, n := range []string{"ca", "prom"} {
		writeCertPair(t, dir, n)
	}
	rewrite(t, "prometheus/prometheus.yml", filepath.Join(dir, "prometheus.yml"), "/etc/prometheus/leash/", dir+"/")
	copyFile(t, "prometheus/leash-alerts.yml", filepath.Join(dir, "leash-alerts.yml"), 0o644)
	copyFile(t, "prometheus/leash-alerts_test.yml", filepath.Join(dir, "leash-alerts_test.yml"), 0o644)
	t.Log(run(t, dir, nil, promtool, "check", "config", "prometheus.yml"))
	t.Log(run(t, dir, nil, promtool, "check", "rules", "leash-alerts.yml"))
	t.Log(run(t, dir, nil, promtool, "test", "rules", "leash-alerts_test.yml"))

	// The rules use the gateway's real metric names.
	rules, err := os.ReadFile("prometheus/leash-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := os.ReadFile("../gateway/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"leash_gateway_runners", "leash_gateway_runner_cert_not_after_seconds",
		"leash_gateway_renewals_total", "leash_gateway_enrollments_total"} {
		if !strings.Contains(string(rules), m) || !strings.Contains(string(metrics), `"`+m+`"`) {
			t.Errorf("metric %s: in the rules %v, in gateway/metrics.go %v", m,
				strings.Contains(string(rules), m), strings.Contains(string(metrics), `"`+m+`"`))
		}
	}
}

// TestSystemdUnits: systemd-analyze verify accepts both units without a
// warning, and they keep their hardening. verify insists that ExecStart's
// binary exists, so it runs on copies pointing at a stand-in executable.
func TestSystemdUnits(t *testing.T) {
	analyze := testenv.RequireTool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	for _, u := range []struct{ unit, bin string }{
		{"leash-gateway.service", "leash"},
		{"leash-runner.service", "leash-runner"},
	} {
		stand := filepath.Join(dir, u.bin)
		if err := os.WriteFile(stand, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join("systemd", u.unit)
		rewrite(t, src, filepath.Join(dir, u.unit), "ExecStart=/usr/local/bin/"+u.bin, "ExecStart="+stand)
	}
	for _, u := range []string{"leash-gateway.service", "leash-runner.service"} {
		out, err := runErr(dir, []string{"SYSTEMD_LOG_COLOR=0"}, analyze, "verify", "--man=no", "./"+u)
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
		b, err := os.ReadFile(filepath.Join("systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		unit := string(b)
		for _, want := range []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
			"PrivateTmp=yes", "CapabilityBoundingSet=\n", "StateDirectory=", "SystemCallFilter=@system-service"} {
			if !strings.Contains(unit, want) {
				t.Errorf("%s lacks %q", u, strings.TrimSpace(want))
			}
		}
		if !strings.Contains(unit, "DynamicUser=yes") && !strings.Contains(unit, "User=leash") {
			t.Errorf("%s runs as root: want DynamicUser=yes or a service user", u)
		}
	}
}

// TestNginx: nginx -t accepts the UI front (inside a minimal nginx.conf,
// with the upstream names pointed at 127.0.0.1 and generated certificate
// files in place of /etc/nginx/leash/), and it keeps what the gateway's UI
// needs: the ui-proxy certificate, a verified gateway, the forwarded
// identity and prefix, and no buffering for Server-Sent Events.
func TestNginx(t *testing.T) {
	nginx := testenv.RequireTool(t, "nginx", "nginx")
	dir := t.TempDir()
	for _, n := range []string{"tls", "ui-proxy", "ca"} {
		writeCertPair(t, dir, n)
	}
	rewrite(t, "nginx/leash.conf", filepath.Join(dir, "leash.conf"),
		"/etc/nginx/leash/", dir+"/",
		"https://gateway:8443/ui/", "https://127.0.0.1:8443/ui/",
		"http://oauth2-proxy:4180", "http://127.0.0.1:4180")
	main := "pid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\nevents {}\nhttp {\n" +
		"    access_log off;\n    client_body_temp_path " + dir + "/body;\n    proxy_temp_path " + dir + "/proxy;\n" +
		"    include " + dir + "/leash.conf;\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, nil, nginx, "-t", "-q", "-p", dir, "-e", dir+"/error.log", "-c", dir+"/nginx.conf")

	b, err := os.ReadFile("nginx/leash.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	for _, want := range []string{
		"location /leash/ {", "proxy_pass https://gateway:8443/ui/;",
		"proxy_ssl_certificate ", "proxy_ssl_certificate_key ", "proxy_ssl_trusted_certificate ", "proxy_ssl_verify              on;",
		"auth_request /oauth2/auth;", "$upstream_http_x_auth_request_user", "$upstream_http_x_auth_request_email",
		"X-Forwarded-User ", "X-Forwarded-Email ", "X-Forwarded-Prefix /leash;", "X-Forwarded-Proto ", "X-Forwarded-Host ",
		"proxy_buffering    off;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx/leash.conf lacks %q", want)
		}
	}
	cfg, err := os.ReadFile("nginx/oauth2-proxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"set_xauthrequest = true", "reverse_proxy = true", "cookie_secure = true", `upstreams = ["static://202"]`} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("nginx/oauth2-proxy.cfg lacks %q", want)
		}
	}
}
