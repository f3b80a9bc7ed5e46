package gateway_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/leashpki/leash/gateway"
)

// TestACMEConfigValidation: every ACME problem is reported, all at once,
// as an ErrConfig; a complete configuration passes.
func TestACMEConfigValidation(t *testing.T) {
	base := func() gateway.Config {
		return gateway.Config{Listen: "127.0.0.1:0", PublicListen: "127.0.0.1:0", PublicTLSListen: "127.0.0.1:0",
			ACME: gateway.ACMEConfig{Directory: "https://acme.example.com/directory", AgreeTOS: true, Email: "ops@example.com"}}
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("valid ACME configuration refused: %v", err)
	}
	eab := base()
	eab.ACME.EABKeyID, eab.ACME.EABMACKeyFile = "kid-1", "/etc/leash/eab.key"
	if err := eab.Validate(); err != nil {
		t.Fatalf("valid EAB configuration refused: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*gateway.Config)
		want   []string
	}{
		{"no public TLS listener", func(c *gateway.Config) { c.PublicTLSListen = "" }, []string{"no public TLS listener"}},
		{"http directory", func(c *gateway.Config) { c.ACME.Directory = "http://acme.example.com/directory" }, []string{"want an https:// URL"}},
		{"directory without host", func(c *gateway.Config) { c.ACME.Directory = "https:///directory" }, []string{"want an https:// URL"}},
		{"unparsable directory", func(c *gateway.Config) { c.ACME.Directory = "https://[::1/directory" }, []string{"acme directory"}},
		{"terms not agreed", func(c *gateway.Config) { c.ACME.AgreeTOS = false }, []string{"terms of service"}},
		{"bad email", func(c *gateway.Config) { c.ACME.Email = "Ops <ops@example.com>" }, []string{"not an email address"}},
		{"eab key id alone", func(c *gateway.Config) { c.ACME.EABKeyID = "kid-1" }, []string{"go together"}},
		{"eab key file alone", func(c *gateway.Config) { c.ACME.EABMACKeyFile = "/etc/leash/eab.key" }, []string{"go together"}},
		{"settings without a directory", func(c *gateway.Config) { c.ACME.Directory = "" }, []string{"no acme directory"}},
		{"everything at once", func(c *gateway.Config) {
			c.PublicTLSListen = ""
			c.ACME = gateway.ACMEConfig{Directory: "http://acme.example.com/dir", Email: "nope", EABKeyID: "kid"}
		}, []string{"no public TLS listener", "want an https:// URL", "terms of service", "not an email address", "go together"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.change(&c)
			err := c.Validate()
			if !errors.Is(err, gateway.ErrConfig) {
				t.Fatalf("Validate() = %v, want an ErrConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}
