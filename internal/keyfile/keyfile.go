// Package keyfile writes files atomically and reads private key files only
// when nobody but their owner can read them. The CA, the CLI and the runner
// share it so that no command ever leaves a half-written certificate or key
// behind, and no key with loose permissions is silently accepted.
package keyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrPermissions means a private key file is readable or writable by group
// or others.
var ErrPermissions = errors.New("private key file permissions too open")

// PrivateMode is the mode every private key file is written with.
const PrivateMode fs.FileMode = 0o600

// WriteAtomic writes data to path through a temporary file in the same
// directory that is synced and renamed into place, so readers see either the
// old content or the new, never a mix. The file gets mode perm.
func WriteAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	name := tmp.Name()
	cleanup := func() { _ = os.Remove(name) }
	if err := tmp.Chmod(perm); err != nil {
		_ = tmp.Close()
		cleanup()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		cleanup()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		cleanup()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		cleanup()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(name, path); err != nil {
		cleanup()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// CheckPrivate returns an error wrapping ErrPermissions when path can be
// read or written by group or others.
func CheckPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, readable by group or others; fix it with: chmod 600 %s",
			ErrPermissions, path, mode, path)
	}
	return nil
}

// ReadPrivate reads a private key file after CheckPrivate accepts it.
func ReadPrivate(path string) ([]byte, error) {
	if err := CheckPrivate(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	return b, nil
}
