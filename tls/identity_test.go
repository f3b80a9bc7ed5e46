package leashtls_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/leashpki/leash/internal/testca"
	leashtls "github.com/leashpki/leash/tls"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"r1", true},
		{"a", true},
		{"runner-01.eu_west", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"../x", false},
		{"..", false},
		{"a..b", false},
		{"Runner", false},
		{"RUNNER", false},
		{"-a", false},
		{"a-", false},
		{".a", false},
		{"a_", false},
		{"a/b", false},
		{`a\b`, false},
		{"a b", false},
		{"a\x00b", false},
		{"r1\n", false},
		{"a%2eb", false},
		{"ä", false},
		{"a@b", false},
		{"a?b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := leashtls.ValidName(tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidName(%q) = %v, want ok = %v", tt.name, err, tt.ok)
			}
		})
	}
}

func TestIdentityURI(t *testing.T) {
	tests := []struct {
		role leashtls.Role
		name string
		want string // "" means an error
	}{
		{leashtls.RoleRunner, "r1", "leash://runner/r1"},
		{leashtls.RoleOperator, "alice", "leash://operator/alice"},
		{leashtls.RolePrometheus, "prom-1", "leash://prometheus/prom-1"},
		{leashtls.RoleUIProxy, "ui", "leash://ui-proxy/ui"},
		{"unknown", "x", ""},
		{"", "x", ""},
		{"Runner", "x", ""},
		{leashtls.RoleRunner, "", ""},
		{leashtls.RoleRunner, "../x", ""},
		{leashtls.RoleRunner, "x?y", ""},
		{leashtls.RoleRunner, strings.Repeat("a", 64), ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.role)+"/"+tt.name, func(t *testing.T) {
			u, err := leashtls.IdentityURI(tt.role, tt.name)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("IdentityURI = %v, want error", u)
				}
				return
			}
			if err != nil || u.String() != tt.want {
				t.Fatalf("IdentityURI = %v, %v; want %s", u, err, tt.want)
			}
			// And back.
			id, err := leashtls.ParseIdentityURI(u)
			if err != nil || id.Role != tt.role || id.Name != tt.name || id.String() != tt.want {
				t.Errorf("ParseIdentityURI(%s) = %+v, %v", u, id, err)
			}
		})
	}
}

func TestParseIdentityURI(t *testing.T) {
	tests := []struct {
		uri  string
		want string // role/name, "" means an error
	}{
		{"leash://runner/r1", "runner/r1"},
		{"leash://ui-proxy/ui", "ui-proxy/ui"},
		{"leash://runner/x?y", ""},
		{"leash://runner/x?", ""},
		{"leash://runner/x#frag", ""},
		{"leash://unknown/x", ""},
		{"leash://user@runner/x", ""},
		{"leash://user:pw@runner/x", ""},
		{"leash://runner:8443/x", ""},
		{"leash://RUNNER/x", ""},
		{"leash://runner/", ""},
		{"leash://runner", ""},
		{"leash:///x", ""},
		{"leash:runner/x", ""},
		{"leash://runner/a/b", ""},
		{"leash://runner/../x", ""},
		{"leash://runner/%2e%2e", ""},
		{"leash://runner/a%2Fb", ""},
		{"leash://runner/x%00", ""},
		{"leash://runner/X", ""},
		{"https://runner/x", ""},
		{"spiffe://runner/x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			u, err := url.Parse(tt.uri)
			if err != nil {
				t.Fatalf("url.Parse: %v", err)
			}
			id, err := leashtls.ParseIdentityURI(u)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseIdentityURI = %+v, want error", id)
				}
				return
			}
			if err != nil || string(id.Role)+"/"+id.Name != tt.want {
				t.Fatalf("ParseIdentityURI = %+v, %v; want %s", id, err, tt.want)
			}
		})
	}
	if _, err := leashtls.ParseIdentityURI(nil); !errors.Is(err, leashtls.ErrNoIdentity) {
		t.Errorf("ParseIdentityURI(nil) = %v, want ErrNoIdentity", err)
	}
}

func TestIdentityFromCert(t *testing.T) {
	ca := testca.New(t)
	tests := []struct {
		name    string
		uris    []string
		want    string // role/name; "" means an error
		wantErr error  // checked with errors.Is when set
	}{
		{name: "runner", uris: []string{"leash://runner/r1"}, want: "runner/r1"},
		{name: "other schemes are ignored", uris: []string{"spiffe://example.org/x", "leash://operator/alice", "https://example.org"}, want: "operator/alice"},
		{name: "no URI", wantErr: leashtls.ErrNoIdentity},
		{name: "only foreign URIs", uris: []string{"spiffe://example.org/x"}, wantErr: leashtls.ErrNoIdentity},
		{name: "two identities", uris: []string{"leash://runner/r1", "leash://operator/alice"}, wantErr: leashtls.ErrAmbiguousIdentity},
		{name: "same identity twice", uris: []string{"leash://runner/r1", "leash://runner/r1"}, wantErr: leashtls.ErrAmbiguousIdentity},
		{name: "query", uris: []string{"leash://runner/x?y"}},
		{name: "unknown role", uris: []string{"leash://unknown/x"}},
		{name: "user info", uris: []string{"leash://user@runner/x"}},
		{name: "traversal", uris: []string{"leash://runner/../x"}},
		{name: "upper case", uris: []string{"leash://runner/R1"}},
		{name: "64 characters", uris: []string{"leash://runner/" + strings.Repeat("a", 64)}},
		{name: "one good one bad", uris: []string{"leash://runner/r1", "leash://runner/a..b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := ca.Issue(t, testca.LeafOptions{URIs: tt.uris})
			id, err := leashtls.IdentityFromCert(leaf.Cert)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("IdentityFromCert = %+v, want error", id)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("IdentityFromCert error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(id.Role)+"/"+id.Name != tt.want || id.Serial != leaf.Serial() {
				t.Fatalf("IdentityFromCert = %+v, %v; want %s serial %s", id, err, tt.want, leaf.Serial())
			}
		})
	}
}
