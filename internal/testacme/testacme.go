// Package testacme runs a real ACME server (smallstep/certificates' acme
// and acme/api packages, on a bbolt database in the test's temp dir) over
// HTTPS on 127.0.0.1, for tests of ACME clients such as the gateway's
// certmagic issuer. Nothing is mocked: accounts, orders, challenges and
// the signing are step's own code.
//
// The only part replaced is where the server's challenge validations
// connect. A real ACME server resolves the identifier in DNS and dials
// port 80 (http-01) or 443 (tls-alpn-01); here every test domain is routed
// to the listeners the test names:
//
//	acmeSrv := testacme.New(t)
//	acmeSrv.Route("app.test", gw.Server.PublicAddr().String(), gw.Server.PublicTLSAddr().String())
//	dir := acmeSrv.Directory(testacme.TLSALPN01) // only tls-alpn-01 offered
//
// step offers two ways to redirect validations: the package globals
// acme.InsecurePortHTTP01/InsecurePortTLSALPN01 (ports only, shared by every
// test in the process) and an acme.Client placed in the request context.
// This package uses the context, so no global is ever changed and tests
// may run in parallel. A name without a route fails validation as an
// unreachable host would.
//
// Each challenge type has its own provisioner, so a test can force the
// client to solve one of them; [EAB] requires external account binding.
// Every order is recorded; [Server.Orders] tells which names were asked
// for, so a test can prove that a client never ordered a name.
//
// Tests running in parallel should use distinct domain names: certmagic
// shares in-flight certificate loads between all its configurations in a
// process by name alone, so two gateways of two tests handshaking for the
// same new name at once can be handed one another's certificate.
package testacme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/smallstep/certificates/acme"
	acmeapi "github.com/smallstep/certificates/acme/api"
	acmenosql "github.com/smallstep/certificates/acme/db/nosql"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	stepdb "github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql"

	"github.com/leashpki/leash/internal/testca"
)

// Provisioners: which challenges the directory offers.
const (
	// Any offers http-01 and tls-alpn-01.
	Any = "any"
	// HTTP01 offers http-01 only.
	HTTP01 = "http-01"
	// TLSALPN01 offers tls-alpn-01 only.
	TLSALPN01 = "tls-alpn-01"
	// EAB offers both and requires external account binding.
	EAB = "eab"
)

// Server is an ACME server on 127.0.0.1.
type Server struct {
	// URL is the server's base URL (https://127.0.0.1:port).
	URL string
	// CA issued the server's HTTPS certificate and signs every ACME
	// certificate: trust CA.Root for both.
	CA *testca.CA

	auth *authority.Authority
	db   acme.DB
	srv  *httptest.Server
	val  *validator

	mu     sync.Mutex
	orders [][]string // identifiers of every order, in order
}

// New starts the server; it stops in t.Cleanup.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{CA: testca.New(t, testca.WithName("ACME Test"))}
	authDB, err := stepdb.New(&stepdb.Config{Type: "bbolt", DataSource: filepath.Join(t.TempDir(), "acme.db")})
	if err != nil {
		t.Fatalf("testacme: open database: %v", err)
	}
	nosqlDB, ok := authDB.(nosql.DB)
	if !ok {
		t.Fatalf("testacme: step database %T is not a nosql.DB", authDB)
	}
	adb, err := acmenosql.New(nosqlDB)
	if err != nil {
		t.Fatalf("testacme: acme tables: %v", err)
	}
	s.db = &recordingDB{DB: adb, s: s}

	prov := func(name string, ch []provisioner.ACMEChallenge, eab bool) provisioner.Interface {
		// step keys external account keys by the ID field, which a
		// provisioner from the configuration leaves empty.
		return &provisioner.ACME{ID: "testacme-" + name, Type: "ACME", Name: name, Challenges: ch, RequireEAB: eab}
	}
	both := []provisioner.ACMEChallenge{provisioner.HTTP_01, provisioner.TLS_ALPN_01}
	cfg := &config.Config{
		DNSNames: []string{"127.0.0.1"},
		AuthorityConfig: &config.AuthConfig{
			Provisioners: provisioner.List{
				prov(Any, both, false),
				prov(HTTP01, []provisioner.ACMEChallenge{provisioner.HTTP_01}, false),
				prov(TLSALPN01, []provisioner.ACMEChallenge{provisioner.TLS_ALPN_01}, false),
				prov(EAB, both, true),
			},
			Backdate: &provisioner.Duration{Duration: time.Minute},
		},
	}
	s.auth, err = authority.NewEmbedded(
		authority.WithConfig(cfg),
		authority.WithDatabase(authDB),
		authority.WithX509RootCerts(s.CA.Root),
		authority.WithX509Signer(s.CA.Intermediate, s.CA.IntermediateKey),
		authority.WithQuietInit(),
	)
	if err != nil {
		_ = authDB.Shutdown()
		t.Fatalf("testacme: start authority: %v", err)
	}

	s.val = newValidator()
	linker := acme.NewLinker("127.0.0.1", "acme")
	mux := chi.NewRouter()
	mux.Route("/acme", func(r chi.Router) { acmeapi.Route(r) })
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := authority.NewContext(r.Context(), s.auth)
		ctx = acme.NewContext(ctx, s.db, s.val, linker, nil)
		mux.ServeHTTP(w, r.WithContext(ctx))
	})
	s.srv = httptest.NewUnstartedServer(handler)
	leaf := s.CA.Issue(t, testca.LeafOptions{CommonName: "testacme", IPs: []string{"127.0.0.1"}})
	s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, MinVersion: tls.VersionTLS12}
	s.srv.StartTLS()
	s.URL = s.srv.URL
	t.Cleanup(func() {
		s.srv.Close()
		s.val.close()
		_ = s.auth.Shutdown() // closes the database too
	})
	return s
}

// Directory is the directory URL of provisioner p (Any, HTTP01,
// TLSALPN01 or EAB).
func (s *Server) Directory(p string) string { return s.URL + "/acme/" + p + "/directory" }

// Pool trusts the server's HTTPS certificate and the certificates it
// issues.
func (s *Server) Pool() *x509.CertPool { return s.CA.Pool() }

// RootPEM is the root as PEM, for a trusted-roots file.
func (s *Server) RootPEM() []byte { return s.CA.RootPEM() }

// Route sends the validations for name to httpAddr (http-01) and tlsAddr
// (tls-alpn-01), each host:port; an empty address refuses that
// challenge's connections. A later Route for name replaces the earlier.
func (s *Server) Route(name, httpAddr, tlsAddr string) { s.val.route(name, httpAddr, tlsAddr) }

// Orders returns the identifiers of every order placed, oldest first.
func (s *Server) Orders() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.orders)
}

// OrdersFor counts the orders that name name.
func (s *Server) OrdersFor(name string) int {
	n := 0
	for _, ids := range s.Orders() {
		if slices.Contains(ids, name) {
			n++
		}
	}
	return n
}

// NewEAB creates an external account key on the EAB provisioner and
// returns its key id and its HMAC key, base64url-encoded (no padding), as
// ACME clients take them.
func (s *Server) NewEAB(t testing.TB) (keyID, macKey string) {
	t.Helper()
	p, err := s.auth.LoadProvisionerByName(EAB)
	if err != nil {
		t.Fatalf("testacme: %v", err)
	}
	acmeProv, ok := p.(*provisioner.ACME)
	if !ok {
		t.Fatalf("testacme: provisioner %s is a %T", EAB, p)
	}
	k, err := s.db.CreateExternalAccountKey(context.Background(), acmeProv.ID, "")
	if err != nil {
		t.Fatalf("testacme: create EAB key: %v", err)
	}
	return k.ID, base64.RawURLEncoding.EncodeToString(k.HmacKey)
}

// recordingDB records every order's identifiers as it is created.
type recordingDB struct {
	acme.DB
	s *Server
}

func (d *recordingDB) CreateOrder(ctx context.Context, o *acme.Order) error {
	ids := make([]string, 0, len(o.Identifiers))
	for _, id := range o.Identifiers {
		ids = append(ids, id.Value)
	}
	d.s.mu.Lock()
	d.s.orders = append(d.s.orders, ids)
	d.s.mu.Unlock()
	return d.DB.CreateOrder(ctx, o)
}

// validator is the acme.Client step's challenge validation uses, with
// every name routed to a test listener instead of DNS.
type validator struct {
	mu     sync.Mutex
	routes map[string][2]string // name → {http addr, tls addr}
	tr     *http.Transport
	client *http.Client
	dialer *net.Dialer
}

var _ acme.Client = (*validator)(nil)

func newValidator() *validator {
	v := &validator{routes: map[string][2]string{}, dialer: &net.Dialer{Timeout: 10 * time.Second}}
	v.tr = &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		target, err := v.target(addr, 0)
		if err != nil {
			return nil, err
		}
		return v.dialer.DialContext(ctx, network, target)
	}}
	v.client = &http.Client{Transport: v.tr, Timeout: 10 * time.Second}
	return v
}

func (v *validator) route(name, httpAddr, tlsAddr string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.routes[strings.ToLower(name)] = [2]string{httpAddr, tlsAddr}
}

// target maps the host:port step wants to reach to the test listener of
// that kind (0 http, 1 tls).
func (v *validator) target(addr string, kind int) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("testacme: %w", err)
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	v.mu.Lock()
	r, ok := v.routes[host]
	v.mu.Unlock()
	if !ok || r[kind] == "" {
		return "", fmt.Errorf("testacme: no route for %s (%s)", host, []string{"http-01", "tls-alpn-01"}[kind])
	}
	return r[kind], nil
}

func (v *validator) Get(url string) (*http.Response, error) { return v.client.Get(url) }

func (v *validator) LookupTxt(string) ([]string, error) {
	return nil, errors.New("testacme: dns-01 is not supported")
}

func (v *validator) TLSDial(network, addr string, cfg *tls.Config) (*tls.Conn, error) {
	target, err := v.target(addr, 1)
	if err != nil {
		return nil, err
	}
	return tls.DialWithDialer(v.dialer, network, target, cfg)
}

func (v *validator) close() { v.tr.CloseIdleConnections() }
