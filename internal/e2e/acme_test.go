package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testacme"
	"github.com/leashpki/leash/internal/testca"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/runner"
)

// acmeSetup is one Leash installation whose public listeners take their
// certificates from an in-process ACME server.
type acmeSetup struct {
	h    *testharness.Harness
	acme *testacme.Server
	op   *testharness.Client
}

// newACMESetup starts the ACME server and a harness whose gateways use
// the directory of its provisioner (testacme.Any, HTTP01, ...), with an
// external account key when eab is set; more adjusts the gateways'
// configuration further.
func newACMESetup(t *testing.T, opts testharness.Options, provisioner string, eab bool, more ...func(*gateway.Config)) *acmeSetup {
	t.Helper()
	srv := testacme.New(t)
	dir := t.TempDir()
	roots := filepath.Join(dir, "acme-roots.pem")
	if err := os.WriteFile(roots, srv.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	acmeCfg := gateway.ACMEConfig{Directory: srv.Directory(provisioner), Email: "ops@example.com",
		CARoots: roots, AgreeTOS: true}
	if eab {
		id, mac := srv.NewEAB(t)
		acmeCfg.EABKeyID, acmeCfg.EABMACKeyFile = id, filepath.Join(dir, "eab.key")
		if err := os.WriteFile(acmeCfg.EABMACKeyFile, []byte(mac+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts.Gateway = func(c *gateway.Config) {
		c.PublicListen = "127.0.0.1:0"
		c.PublicTLSListen = "127.0.0.1:0"
		c.ACME = acmeCfg
		for _, m := range more {
			m(c)
		}
	}
	h := testharness.New(t, opts)
	return &acmeSetup{h: h, acme: srv, op: h.Client(t, ca.ProfileOperator, "alice")}
}

// serveDomain starts a runner on gw serving name from a small app and
// points the domain at it.
func (a *acmeSetup) serveDomain(t *testing.T, gw *testharness.Gateway, runnerName, name string) {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s for %s", runnerName, r.Host)
	}))
	t.Cleanup(backend.Close)
	r := a.h.StartRunner(t, gw, runnerName, testharness.RunnerOptions{Domains: map[string][]runner.Route{
		name: {{Target: backend.URL}},
	}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 })
	body := `{"runner":"` + runnerName + `"}`
	if status, answer, err := a.op.Raw(http.MethodPut, gw.APIURL+"/v1/domains/"+name, "application/json", body); err != nil || status != http.StatusOK {
		t.Fatalf("set domain %s: %d %s %v", name, status, answer, err)
	}
}

// publicClient speaks HTTPS to gw's public TLS listener whatever the URL's
// host, trusting only the ACME server's root.
func (a *acmeSetup) publicClient(t *testing.T, gw *testharness.Gateway) *http.Client {
	t.Helper()
	addr := gw.Server.PublicTLSAddr().String()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: a.acme.Pool(), MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
	}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// get fetches url and returns the body and the leaf certificate served.
func get(t *testing.T, c *http.Client, url string) (string, *x509.Certificate) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %q %v", url, resp.StatusCode, body, err)
	}
	return string(body), resp.TLS.PeerCertificates[0]
}

// checkACMELeaf verifies leaf for name against the ACME server's root
// only (not the embedded CA).
func checkACMELeaf(t *testing.T, srv *testacme.Server, leaf *x509.Certificate, inter []*x509.Certificate, name string) {
	t.Helper()
	pool := x509.NewCertPool()
	for _, c := range inter {
		pool.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: srv.Pool(), Intermediates: pool}); err != nil {
		t.Fatalf("served certificate for %s does not chain to the ACME root: %v", name, err)
	}
	if leaf.Issuer.String() != srv.CA.Intermediate.Subject.String() {
		t.Fatalf("served certificate issued by %s, want the ACME CA %s", leaf.Issuer, srv.CA.Intermediate.Subject)
	}
}

// TestACMEPublicCertificate: the first HTTPS request to a served domain
// on the public TLS listener gets a certificate that the gateway obtained
// on demand from the ACME server (chain checked against the ACME root)
// and reaches the runner's app; with each challenge forced on its own
// (http-01 answered on the public HTTP listener, tls-alpn-01 on the TLS
// listener), and with external account binding. One order per name; the
// second request reuses the certificate.
func TestACMEPublicCertificate(t *testing.T) {
	cases := []struct {
		name        string
		provisioner string
		eab         bool
	}{
		{"http-01", testacme.HTTP01, false},
		{"tls-alpn-01", testacme.TLSALPN01, false},
		{"eab", testacme.EAB, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A name per subtest: see the testacme package comment.
			name := tc.name + ".app.test"
			a := newACMESetup(t, testharness.Options{}, tc.provisioner, tc.eab)
			gw := a.h.StartGateway(t)
			a.acme.Route(name, gw.Server.PublicAddr().String(), gw.Server.PublicTLSAddr().String())
			a.serveDomain(t, gw, "web-1", name)

			c := a.publicClient(t, gw)
			body, leaf := get(t, c, "https://"+name+"/")
			if body != "hello from web-1 for "+name {
				t.Fatalf("body %q", body)
			}
			resp, err := c.Get("https://" + name + "/again")
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.TLS.PeerCertificates[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 && !resp.TLS.DidResume {
				t.Errorf("second request served another certificate")
			}
			checkACMELeaf(t, a.acme, leaf, resp.TLS.PeerCertificates[1:], name)
			if n := a.acme.OrdersFor(name); n != 1 {
				t.Fatalf("%d orders for %s, want 1", n, name)
			}
		})
	}
}

// TestACMERefusesUnservedNames (hostile): a handshake naming a host that is
// not a served domain gets no certificate, with or without the acme-tls/1
// protocol, and a forged http-01 request gets the domains' 404; the ACME
// server sees no order for any of it, although its validations for that
// name would reach this gateway. A served domain still gets one.
func TestACMERefusesUnservedNames(t *testing.T) {
	const good, evil = "good.hostile.test", "evil.hostile.test"
	a := newACMESetup(t, testharness.Options{}, testacme.Any, false)
	gw := a.h.StartGateway(t)
	for _, name := range []string{good, evil} {
		a.acme.Route(name, gw.Server.PublicAddr().String(), gw.Server.PublicTLSAddr().String())
	}
	a.serveDomain(t, gw, "web-1", good)

	tlsAddr := gw.Server.PublicTLSAddr().String()
	handshake := func(serverName string, protos ...string) (*x509.Certificate, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{
			ServerName: serverName, NextProtos: protos, RootCAs: a.acme.Pool(), MinVersion: tls.VersionTLS12,
			InsecureSkipVerify: serverName == "", // no name to verify; any certificate at all is the failure
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := d.DialContext(ctx, "tcp", tlsAddr)
		if err != nil {
			return nil, err
		}
		defer func() { _ = conn.Close() }()
		return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
	}
	for _, tc := range []struct {
		what, name string
		protos     []string
	}{
		{"unserved name", evil, nil},
		{"unserved name over acme-tls/1", evil, []string{"acme-tls/1"}},
		{"unserved name in upper case", "EVIL.hostile.test", nil},
		{"no SNI", "", nil},
		{"IP as SNI", "127.0.0.1", nil},
	} {
		if cert, err := handshake(tc.name, tc.protos...); err == nil {
			t.Errorf("%s: handshake succeeded with a certificate for %v", tc.what, cert.DNSNames)
		}
	}

	// A forged http-01 request for the unserved name falls through to the
	// domains, which do not know it.
	resp, err := http.Get("http://" + gw.Server.PublicAddr().String() + "/.well-known/acme-challenge/forged-token")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("forged http-01 request: %d, want 404", resp.StatusCode)
	}
	if orders := a.acme.Orders(); len(orders) != 0 {
		t.Fatalf("the ACME server saw orders %v for names that are not served", orders)
	}

	// The served domain is issued, and it is the only order.
	if _, leaf := get(t, a.publicClient(t, gw), "https://"+good+"/"); !slices.Contains(leaf.DNSNames, good) {
		t.Fatalf("certificate for %v, want %s", leaf.DNSNames, good)
	}
	if orders := a.acme.Orders(); len(orders) != 1 || !slices.Equal(orders[0], []string{good}) {
		t.Fatalf("orders %v, want exactly one for %s", orders, good)
	}
}

// TestACMEReplicas: two replicas on one store (SQLite and PostgreSQL).
// The ACME server's http-01 validation of the first replica's order is
// answered by the second (as behind a load balancer: the challenge is in
// the store), and the second then serves the same certificate, loaded from
// the store, without a new order.
func TestACMEReplicas(t *testing.T) {
	forEachStore(t, func(t *testing.T, opts testharness.Options) {
		name := filepath.Base(t.Name()) + ".replicas.test" // per store: see the testacme package comment
		a := newACMESetup(t, opts, testacme.HTTP01, false)
		gw1 := a.h.StartGateway(t, testharness.GatewayOptions{ID: "gw-1"})
		a.serveDomain(t, gw1, "web-1", name)
		gw2 := a.h.StartGateway(t, testharness.GatewayOptions{ID: "gw-2"})
		a.acme.Route(name, gw2.Server.PublicAddr().String(), gw2.Server.PublicTLSAddr().String())

		body, leaf1 := get(t, a.publicClient(t, gw1), "https://"+name+"/")
		if body != "hello from web-1 for "+name {
			t.Fatalf("body %q", body)
		}
		if n := a.acme.OrdersFor(name); n != 1 {
			t.Fatalf("%d orders for %s after gw-1, want 1", n, name)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", gw2.Server.PublicTLSAddr().String(),
			&tls.Config{ServerName: name, RootCAs: a.acme.Pool(), MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("handshake with gw-2: %v", err)
		}
		leaf2 := conn.ConnectionState().PeerCertificates[0]
		_ = conn.Close()
		if leaf1.SerialNumber.Cmp(leaf2.SerialNumber) != 0 {
			t.Fatalf("gw-2 serves serial %s, gw-1 %s: want the shared certificate", leaf2.SerialNumber, leaf1.SerialNumber)
		}
		if n := a.acme.OrdersFor(name); n != 1 {
			t.Fatalf("%d orders for %s after gw-2, want 1", n, name)
		}
	})
}

// TestACMEFileCertsFirst: a certificate file covering a served domain is
// served for it and nothing is ordered; another served domain on the same
// listener gets its certificate from ACME.
func TestACMEFileCertsFirst(t *testing.T) {
	const fromFile, fromACME = "files.precedence.test", "acme.precedence.test"
	fileCA := testca.New(t, testca.WithName("Files"))
	leaf := fileCA.Issue(t, testca.LeafOptions{DNSNames: []string{fromFile}})
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "files.crt"), filepath.Join(dir, "files.key")
	if err := os.WriteFile(certFile, leaf.ChainPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, leaf.KeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newACMESetup(t, testharness.Options{}, testacme.Any, false, func(c *gateway.Config) {
		c.PublicCerts = []string{certFile + ":" + keyFile}
	})
	gw := a.h.StartGateway(t)
	for _, name := range []string{fromFile, fromACME} {
		a.acme.Route(name, gw.Server.PublicAddr().String(), gw.Server.PublicTLSAddr().String())
		a.serveDomain(t, gw, "web-"+strings.Split(name, ".")[0], name)
	}

	fileClient := a.publicClient(t, gw)
	fileClient.Transport.(*http.Transport).TLSClientConfig.RootCAs = fileCA.Pool()
	if _, got := get(t, fileClient, "https://"+fromFile+"/"); got.SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Fatalf("%s: served serial %s, want the file's %s", fromFile, got.SerialNumber, leaf.Cert.SerialNumber)
	}
	resp, err := a.publicClient(t, gw).Get("https://" + fromACME + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	checkACMELeaf(t, a.acme, resp.TLS.PeerCertificates[0], resp.TLS.PeerCertificates[1:], fromACME)
	if orders := a.acme.Orders(); len(orders) != 1 || !slices.Equal(orders[0], []string{fromACME}) {
		t.Fatalf("orders %v, want exactly one for %s", orders, fromACME)
	}
}
