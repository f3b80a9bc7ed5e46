package ca_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
)

func TestProfilesShapeCertificates(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	ctx := context.Background()
	for _, tc := range []struct {
		profile, name string
		hosts         []string
		wantCN        string
		wantDNS       []string
		wantIPs       []string
		wantURI       string
		eku           x509.ExtKeyUsage
		lifetime      time.Duration
	}{
		{profile: "server", hosts: []string{"gw.example.com", "10.0.0.1", "[::1]", "GW.example.com", "localhost"},
			wantCN: "gw.example.com", wantDNS: []string{"gw.example.com", "localhost"}, wantIPs: []string{"10.0.0.1", "::1"},
			eku: x509.ExtKeyUsageServerAuth, lifetime: 90 * 24 * time.Hour},
		{profile: "runner", name: "web-1", wantCN: "web-1", wantURI: "leash://runner/web-1", eku: x509.ExtKeyUsageClientAuth, lifetime: 24 * time.Hour},
		{profile: "operator", name: "alice", wantCN: "alice", wantURI: "leash://operator/alice", eku: x509.ExtKeyUsageClientAuth},
		{profile: "prometheus", name: "prom", wantCN: "prom", wantURI: "leash://prometheus/prom", eku: x509.ExtKeyUsageClientAuth},
		{profile: "ui-proxy", name: "nginx", wantCN: "nginx", wantURI: "leash://ui-proxy/nginx", eku: x509.ExtKeyUsageClientAuth},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			iss, err := f.auth.Issue(ctx, ca.IssueRequest{Profile: tc.profile, Name: tc.name, Hosts: tc.hosts,
				CSR: newCSR(t, newKey(t), csrOpts{})})
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			c := iss.Leaf
			if c.Subject.CommonName != tc.wantCN {
				t.Errorf("CN %q, want %q", c.Subject.CommonName, tc.wantCN)
			}
			if strings.Join(c.DNSNames, ",") != strings.Join(tc.wantDNS, ",") {
				t.Errorf("DNS SANs %v, want %v", c.DNSNames, tc.wantDNS)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if strings.Join(ips, ",") != strings.Join(tc.wantIPs, ",") {
				t.Errorf("IP SANs %v, want %v", ips, tc.wantIPs)
			}
			var uris []string
			for _, u := range c.URIs {
				uris = append(uris, u.String())
			}
			if tc.wantURI == "" && len(uris) > 0 || tc.wantURI != "" && (len(uris) != 1 || uris[0] != tc.wantURI) {
				t.Errorf("URI SANs %v, want [%s]", uris, tc.wantURI)
			}
			if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != tc.eku {
				t.Errorf("EKUs %v, want only %v", c.ExtKeyUsage, tc.eku)
			}
			if c.IsCA || !c.BasicConstraintsValid {
				t.Errorf("leaf is CA=%v (constraints valid %v), want CA:FALSE", c.IsCA, c.BasicConstraintsValid)
			}
			if err := verifyChain(t, f.auth, c, tc.eku); err != nil {
				t.Errorf("chain does not verify for its usage: %v", err)
			}
			other := x509.ExtKeyUsageServerAuth
			if tc.eku == other {
				other = x509.ExtKeyUsageClientAuth
			}
			if err := verifyChain(t, f.auth, c, other); err == nil {
				t.Errorf("certificate also verifies for %v; profiles must not overlap", other)
			}
			if tc.lifetime > 0 {
				// step backdates NotBefore by a minute.
				if got := c.NotAfter.Sub(c.NotBefore) - time.Minute; got != tc.lifetime {
					t.Errorf("lifetime %s, want %s", got, tc.lifetime)
				}
			}
			if len(iss.Chain) != 2 || !iss.Chain[1].Equal(f.auth.Intermediate()) {
				t.Errorf("chain is not leaf + intermediate")
			}
			rec, err := f.auth.Certificate(ctx, c.SerialNumber.String())
			if err != nil || rec.Profile != tc.profile || rec.Status != ca.StatusValid {
				t.Errorf("inventory record %+v, %v", rec.CertRecord.Profile, err)
			}
		})
	}
}

// TestCSRCannotWidenProfile: a CSR asking for more than its token allows is
// refused before the token is spent.
func TestCSRCannotWidenProfile(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	ctx := context.Background()
	bc, _ := asn1.Marshal(struct {
		IsCA bool
	}{true})
	ekuAny, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 2}, {1, 3, 6, 1, 5, 5, 7, 3, 1}})
	ekuCode, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 3}})
	tok := f.enrollToken(t, ca.ProfileRunner, "web-1")
	for _, tc := range []struct {
		name string
		csr  csrOpts
		want string
	}{
		{"other common name", csrOpts{cn: "web-2"}, "common name"},
		{"extra DNS SAN", csrOpts{dns: []string{"evil.example.com"}}, "SANs"},
		{"extra IP SAN", csrOpts{ips: []string{"10.1.2.3"}}, "SANs"},
		{"other identity", csrOpts{uris: []string{"leash://operator/web-1"}}, "SANs"},
		{"identity plus extra", csrOpts{uris: []string{"leash://runner/web-1", "leash://runner/web-2"}}, "SANs"},
		{"email SAN", csrOpts{emails: []string{"a@b.c"}}, "e-mail"},
		{"CA rights", csrOpts{exts: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Value: bc}}}, "CA rights"},
		{"serverAuth EKU", csrOpts{exts: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: ekuAny}}}, "extended key usage"},
		{"codeSigning EKU", csrOpts{exts: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: ekuCode}}}, "extended key usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.auth.Enroll(ctx, tok.Value, newCSR(t, newKey(t), tc.csr))
			if !errors.Is(err, ca.ErrPolicy) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrPolicy naming %q", err, tc.want)
			}
		})
	}
	// The token survived every refusal; an honest CSR naming exactly its
	// identity is fine.
	iss, err := f.auth.Enroll(ctx, tok.Value, newCSR(t, newKey(t), csrOpts{cn: "web-1", uris: []string{"leash://runner/web-1"}}))
	if err != nil {
		t.Fatalf("honest CSR: %v", err)
	}
	if iss.Leaf.Subject.CommonName != "web-1" {
		t.Fatalf("CN %q", iss.Leaf.Subject.CommonName)
	}
}

func TestIssueRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	ctx := context.Background()
	csr := newCSR(t, newKey(t), csrOpts{})
	for _, tc := range []struct {
		name string
		req  ca.IssueRequest
		want string
	}{
		{"no hosts", ca.IssueRequest{Profile: "server", CSR: csr}, "at least one host"},
		{"bad host", ca.IssueRequest{Profile: "server", Hosts: []string{"bad_host!"}, CSR: csr}, "neither an IP"},
		{"hosts on client", ca.IssueRequest{Profile: "operator", Name: "a", Hosts: []string{"x.com"}, CSR: csr}, "no host names"},
		{"lifetime too long", ca.IssueRequest{Profile: "runner", Name: "a", CSR: csr, Lifetime: 365 * 24 * time.Hour}, "outside"},
		{"lifetime too short", ca.IssueRequest{Profile: "runner", Name: "a", CSR: csr, Lifetime: time.Second}, "outside"},
		{"unknown profile", ca.IssueRequest{Profile: "root", Name: "a", CSR: csr}, "unknown profile"},
		{"no csr", ca.IssueRequest{Profile: "runner", Name: "a"}, "no certificate request"},
		{"bad name", ca.IssueRequest{Profile: "runner", Name: "Web 1", CSR: csr}, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.auth.Issue(ctx, tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
	certs, err := f.auth.Certificates(ctx, ca.InventoryQuery{})
	if err != nil || len(certs) != 0 {
		t.Fatalf("refused requests left %d certificates (%v)", len(certs), err)
	}
}

func TestRenewAndRekey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	ctx := context.Background()
	key := newKey(t)
	iss, err := f.auth.Issue(ctx, ca.IssueRequest{Profile: "runner", Name: "web-1", CSR: newCSR(t, key, csrOpts{}), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := f.auth.Renew(ctx, iss.Leaf, nil)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if renewed.Leaf.SerialNumber.Cmp(iss.Leaf.SerialNumber) == 0 {
		t.Fatal("renewal kept the serial")
	}
	if !ca.PublicKeyMatches(key, renewed.Leaf.PublicKey) {
		t.Fatal("renewal changed the key")
	}
	if renewed.Leaf.URIs[0].String() != "leash://runner/web-1" || renewed.Profile != "runner" {
		t.Fatalf("renewal lost identity: %v %s", renewed.Leaf.URIs, renewed.Profile)
	}
	if got := renewed.Leaf.NotAfter.Sub(renewed.Leaf.NotBefore) - time.Minute; got != time.Hour {
		t.Fatalf("renewed lifetime %s, want the original 1h", got)
	}
	newK := newKey(t)
	rekeyed, err := f.auth.Renew(ctx, renewed.Leaf, newK.Public())
	if err != nil {
		t.Fatalf("rekey: %v", err)
	}
	if !ca.PublicKeyMatches(newK, rekeyed.Leaf.PublicKey) {
		t.Fatal("rekey kept the old key")
	}
	if err := verifyChain(t, f.auth, rekeyed.Leaf, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatal(err)
	}
	rec, err := f.auth.Certificate(ctx, rekeyed.Leaf.SerialNumber.String())
	if err != nil || rec.Profile != "runner" {
		t.Fatalf("rekeyed certificate recorded as %q (%v)", rec.Profile, err)
	}

	// Revoked, expired and foreign certificates cannot renew.
	if _, err := f.auth.Revoke(ctx, iss.Leaf.SerialNumber.String(), ca.ReasonKeyCompromise, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Renew(ctx, iss.Leaf, nil); !errors.Is(err, ca.ErrRenewal) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("renew revoked: %v", err)
	}
	foreign := newFixture(t, ca.KeyECP256)
	fiss, err := foreign.auth.Issue(ctx, ca.IssueRequest{Profile: "runner", Name: "web-1", CSR: newCSR(t, key, csrOpts{})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Renew(ctx, fiss.Leaf, nil); !errors.Is(err, ca.ErrRenewal) || !strings.Contains(err.Error(), "not issued by this CA") {
		t.Fatalf("renew foreign: %v", err)
	}
	f.clock.Advance(2 * time.Hour)
	if _, err := f.auth.Renew(ctx, rekeyed.Leaf, nil); !errors.Is(err, ca.ErrRenewal) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("renew expired: %v", err)
	}
}

func TestServerHostsDetectIPs(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	iss, err := f.auth.Issue(context.Background(), ca.IssueRequest{Profile: "server", Hosts: []string{"127.0.0.1", "fe80::1", "*.apps.example.com"},
		CSR: newCSR(t, newKey(t), csrOpts{})})
	if err != nil {
		t.Fatal(err)
	}
	want := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("fe80::1")}
	if len(iss.Leaf.IPAddresses) != 2 || !iss.Leaf.IPAddresses[0].Equal(want[0]) || !iss.Leaf.IPAddresses[1].Equal(want[1]) {
		t.Fatalf("IPs %v, want %v", iss.Leaf.IPAddresses, want)
	}
	if len(iss.Leaf.DNSNames) != 1 || iss.Leaf.DNSNames[0] != "*.apps.example.com" {
		t.Fatalf("DNS %v", iss.Leaf.DNSNames)
	}
}
