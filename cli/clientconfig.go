package cli

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/internal/keyfile"
)

// clientConfig is what 'leash login' stores: where the gateway is and which
// identity talks to it. Paths are absolute.
type clientConfig struct {
	Gateway string `yaml:"gateway"`
	CA      string `yaml:"ca,omitempty"`
	Cert    string `yaml:"cert,omitempty"`
	Key     string `yaml:"key,omitempty"`
}

// defaultClientConfigPath is $XDG_CONFIG_HOME/leash/config.yaml, usually
// ~/.config/leash/config.yaml.
func defaultClientConfigPath() string {
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "leash", "config.yaml")
	}
	return filepath.Join(".leash", "config.yaml")
}

// loadClientConfig reads path; unknown keys are refused and the file must be
// private, since it points at a private key.
func loadClientConfig(path string) (clientConfig, error) {
	b, err := keyfile.ReadPrivate(path)
	if errors.Is(err, os.ErrNotExist) {
		return clientConfig{}, fmt.Errorf("no client config at %s: run 'leash login GATEWAY_URL' first", path)
	}
	if err != nil {
		return clientConfig{}, fmt.Errorf("client config: %w", err)
	}
	var cfg clientConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return clientConfig{}, fmt.Errorf("client config %s: %w", path, err)
	}
	if err := cfg.validate(); err != nil {
		return clientConfig{}, fmt.Errorf("client config %s: %w", path, err)
	}
	return cfg, nil
}

// validate reports every problem at once.
func (c clientConfig) validate() error {
	var errs []error
	if _, err := parseGatewayURL(c.Gateway); err != nil {
		errs = append(errs, err)
	}
	if (c.Cert == "") != (c.Key == "") {
		errs = append(errs, errors.New("cert and key go together: set both or neither"))
	}
	for name, p := range map[string]string{"ca": c.CA, "cert": c.Cert, "key": c.Key} {
		if p != "" && !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s: path %q must be absolute", name, p))
		}
	}
	return errors.Join(errs...)
}

func (c clientConfig) marshal() ([]byte, error) { return yaml.Marshal(c) }

// loadRoots reads a PEM bundle of trust anchors.
func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca bundle: %w", err)
	}
	certs, err := ca.ParseCerts(path, b)
	if err != nil {
		return nil, fmt.Errorf("ca bundle: %w", err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
