package cli

import (
	"bytes"
	"fmt"
	"path/filepath"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/internal/enroll"
	"github.com/leashpki/leash/internal/keyfile"
	"github.com/leashpki/leash/protocol"
)

// loginWithToken enrolls an operator certificate with a one-time token:
// the key is generated here, the root is pinned by the token's
// fingerprint, and key, chain and root land next to the config.
func (r *runtime) loginWithToken(c *ucli.Context, gateway, cfgPath string) error {
	raw, err := keyfile.ReadPrivate(c.String("token-file"))
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	token := string(bytes.TrimSpace(raw))
	hints, err := protocol.ParseTokenHints(token)
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	enrollURL := c.String("enroll-url")
	if enrollURL == "" {
		if enrollURL, err = enroll.DefaultURL(gateway); err != nil {
			return err
		}
	}
	dir := filepath.Dir(cfgPath)
	cfg := clientConfig{Gateway: gateway, CA: filepath.Join(dir, "ca.crt"),
		Cert: filepath.Join(dir, hints.Subject+".crt"), Key: filepath.Join(dir, hints.Subject+".key")}
	if err := refuseOverwrite(false, cfg.Cert, cfg.Key); err != nil {
		return err
	}
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		return err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return err
	}
	cl := enroll.Client{URL: enrollURL}
	root, err := cl.FetchRoot(ctx(c), hints.RootFingerprint)
	if err != nil {
		return err
	}
	chain, err := cl.Enroll(ctx(c), root, token, csr.Raw)
	if err != nil {
		return err
	}
	keyPEM, err := ca.MarshalPrivateKey(key, nil)
	if err != nil {
		return err
	}
	files := []outFile{
		{path: cfg.Key, data: keyPEM, mode: 0o600},
		{path: cfg.Cert, data: ca.EncodeCerts(chain...), mode: 0o644},
		{path: cfg.CA, data: ca.EncodeCerts(root), mode: 0o644},
	}
	if err := mkdirPrivate(dir); err != nil {
		return err
	}
	// The token is spent: keep what it bought even if the check below
	// fails, so that a retry needs no new token.
	if err := writeFiles(files); err != nil {
		return err
	}
	return r.saveLogin(c, cfgPath, cfg, nil)
}
