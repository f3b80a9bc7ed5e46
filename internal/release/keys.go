package release

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/leashpki/leash/internal/keyfile"
	"github.com/leashpki/leash/internal/release/minisign"
)

// GenerateKey writes a new minisign key pair: the secret key (mode 0600)
// to secretPath and the public key to publicPath. It never overwrites.
func GenerateKey(secretPath, publicPath string) (minisign.PublicKey, error) {
	for _, p := range []string{secretPath, publicPath} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			return minisign.PublicKey{}, fmt.Errorf("keygen: %s exists; refusing to overwrite it", p)
		}
	}
	k, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return minisign.PublicKey{}, fmt.Errorf("keygen: %w", err)
	}
	if err := keyfile.WriteAtomic(secretPath, k.Marshal(), keyfile.PrivateMode); err != nil {
		return minisign.PublicKey{}, fmt.Errorf("keygen: %w", err)
	}
	if err := keyfile.WriteAtomic(publicPath, k.Public().Marshal(), 0o644); err != nil {
		return minisign.PublicKey{}, fmt.Errorf("keygen: %w", err)
	}
	return k.Public(), nil
}

// LoadKey reads a minisign secret key that only its owner can read.
func LoadKey(path string) (minisign.PrivateKey, error) {
	b, err := keyfile.ReadPrivate(path)
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("signing key: %w", err)
	}
	k, err := minisign.ParsePrivateKey(b)
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// signingKey loads cfg.KeyPath or makes the throwaway key pair.
func signingKey(cfg Config, res *Result) (minisign.PrivateKey, error) {
	if cfg.KeyPath != "" {
		return LoadKey(cfg.KeyPath)
	}
	secret := filepath.Join(cfg.OutDir, ThrowawayName)
	pub, err := GenerateKey(secret, filepath.Join(cfg.OutDir, PublicKeyName))
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("release: %w", err)
	}
	note := fmt.Sprintf("no signing key given: generated a THROWAWAY key %s (id %s) in %s; do not publish a release signed with it",
		ThrowawayName, pub.ID, cfg.OutDir)
	res.Notes = append(res.Notes, note)
	fmt.Fprintln(cfg.Log, note)
	if err := os.Remove(filepath.Join(cfg.OutDir, PublicKeyName)); err != nil { // signSums writes it again
		return minisign.PrivateKey{}, fmt.Errorf("release: %w", err)
	}
	return LoadKey(secret)
}
