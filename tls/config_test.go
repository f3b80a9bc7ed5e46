package leashtls_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	leashtls "github.com/leashpki/leash/tls"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in   string
		want leashtls.Mode
		ok   bool
	}{
		{"plain", leashtls.ModePlain, true},
		{"https", leashtls.ModeHTTPS, true},
		{"mtls", leashtls.ModeMTLS, true},
		{"", "", false},
		{"MTLS", "", false},
		{" mtls", "", false},
		{"tls", "", false},
		{"http", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := leashtls.ParseMode(tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Fatalf("ParseMode(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, leashtls.ErrInvalidMode) {
				t.Fatalf("ParseMode(%q) error = %v, want ErrInvalidMode", tt.in, err)
			}
			if !strings.Contains(err.Error(), "plain, https, mtls") {
				t.Errorf("error %q does not list the valid modes", err)
			}
		})
	}
}

func TestServerConfigOptions(t *testing.T) {
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }
	pool := x509.NewCertPool()
	mtls := func(mut func(*leashtls.ServerOptions)) leashtls.ServerOptions {
		o := leashtls.ServerOptions{Mode: leashtls.ModeMTLS, Certificate: getCert, ClientCAs: pool, Revocation: leashtls.NoRevocation{}}
		if mut != nil {
			mut(&o)
		}
		return o
	}

	tests := []struct {
		name string
		opts leashtls.ServerOptions
		// problems are substrings the error must hold; none means success.
		problems []string
		check    func(t *testing.T, cfg *tls.Config)
	}{
		{
			name: "plain has no TLS config",
			opts: leashtls.ServerOptions{Mode: leashtls.ModePlain},
			check: func(t *testing.T, cfg *tls.Config) {
				if cfg != nil {
					t.Errorf("plain mode config = %v, want nil", cfg)
				}
			},
		},
		{
			name: "https",
			opts: leashtls.ServerOptions{Mode: leashtls.ModeHTTPS, Certificate: getCert},
			check: func(t *testing.T, cfg *tls.Config) {
				if cfg.ClientAuth != tls.NoClientCert || cfg.MinVersion != tls.VersionTLS13 || cfg.VerifyConnection != nil {
					t.Errorf("https config: ClientAuth %v MinVersion %x", cfg.ClientAuth, cfg.MinVersion)
				}
			},
		},
		{
			name: "mtls",
			opts: mtls(nil),
			check: func(t *testing.T, cfg *tls.Config) {
				if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs != pool ||
					cfg.VerifyConnection == nil || cfg.MinVersion != tls.VersionTLS13 || cfg.Time == nil {
					t.Errorf("mtls config: ClientAuth %v MinVersion %x", cfg.ClientAuth, cfg.MinVersion)
				}
			},
		},
		{
			name: "explicit TLS 1.2",
			opts: mtls(func(o *leashtls.ServerOptions) { o.MinVersion = tls.VersionTLS12 }),
			check: func(t *testing.T, cfg *tls.Config) {
				if cfg.MinVersion != tls.VersionTLS12 {
					t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
				}
			},
		},
		{name: "unknown mode", opts: leashtls.ServerOptions{Mode: "tls"}, problems: []string{`"tls"`, "plain, https, mtls"}},
		{name: "empty mode", opts: leashtls.ServerOptions{}, problems: []string{"valid modes"}},
		{name: "https without certificate", opts: leashtls.ServerOptions{Mode: leashtls.ModeHTTPS}, problems: []string{"Certificate is required"}},
		{name: "mtls without client CAs", opts: mtls(func(o *leashtls.ServerOptions) { o.ClientCAs = nil }), problems: []string{"ClientCAs is required"}},
		{name: "mtls without revocation", opts: mtls(func(o *leashtls.ServerOptions) { o.Revocation = nil }), problems: []string{"Revocation is required", "NoRevocation{}"}},
		{name: "TLS 1.1", opts: mtls(func(o *leashtls.ServerOptions) { o.MinVersion = tls.VersionTLS11 }), problems: []string{"TLS 1.1 is not allowed"}},
		{name: "unknown role", opts: mtls(func(o *leashtls.ServerOptions) { o.Roles = []leashtls.Role{"admin"} }), problems: []string{`unknown role "admin"`}},
		{name: "negative timeout", opts: mtls(func(o *leashtls.ServerOptions) { o.RevocationTimeout = -1 }), problems: []string{"RevocationTimeout"}},
		{
			name:     "client settings outside mtls",
			opts:     leashtls.ServerOptions{Mode: leashtls.ModeHTTPS, Certificate: getCert, ClientCAs: pool, Revocation: leashtls.NoRevocation{}, Roles: []leashtls.Role{leashtls.RoleRunner}},
			problems: []string{"ClientCAs only applies in mtls mode", "Revocation only applies", "Roles only applies"},
		},
		{
			name:     "client CAs in plain mode",
			opts:     leashtls.ServerOptions{Mode: leashtls.ModePlain, ClientCAs: pool},
			problems: []string{"ClientCAs only applies in mtls mode"},
		},
		{
			name: "every problem at once",
			opts: leashtls.ServerOptions{Mode: leashtls.ModeMTLS, MinVersion: tls.VersionTLS10},
			problems: []string{"Certificate is required", "ClientCAs is required", "Revocation is required",
				"TLS 1.0 is not allowed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := leashtls.ServerConfig(tt.opts)
			if len(tt.problems) == 0 {
				if err != nil {
					t.Fatalf("ServerConfig: %v", err)
				}
				tt.check(t, cfg)
				return
			}
			if !errors.Is(err, leashtls.ErrInvalidConfig) || cfg != nil {
				t.Fatalf("ServerConfig = %v, %v; want ErrInvalidConfig", cfg, err)
			}
			for _, p := range tt.problems {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not mention %q", err, p)
				}
			}
		})
	}
}

func TestClientConfigOptions(t *testing.T) {
	pool := x509.NewCertPool()
	tests := []struct {
		name     string
		opts     leashtls.ClientOptions
		problems []string
	}{
		{name: "defaults", opts: leashtls.ClientOptions{Roots: pool, ServerName: "gw.example"}},
		{name: "no roots", opts: leashtls.ClientOptions{}, problems: []string{"Roots is required"}},
		{name: "old version", opts: leashtls.ClientOptions{Roots: pool, MinVersion: tls.VersionTLS11}, problems: []string{"TLS 1.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := leashtls.ClientConfig(tt.opts)
			if len(tt.problems) == 0 {
				if err != nil {
					t.Fatalf("ClientConfig: %v", err)
				}
				if cfg.RootCAs != pool || cfg.ServerName != "gw.example" || cfg.MinVersion != tls.VersionTLS13 || cfg.InsecureSkipVerify {
					t.Errorf("config: %+v", cfg)
				}
				return
			}
			if !errors.Is(err, leashtls.ErrInvalidConfig) {
				t.Fatalf("ClientConfig error = %v, want ErrInvalidConfig", err)
			}
			for _, p := range tt.problems {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not mention %q", err, p)
				}
			}
		})
	}
}
