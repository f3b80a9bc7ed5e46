package ca_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store/sqlitestore"
)

// TestKeyTypes: every supported CA key type initialises, opens and issues
// a chain that verifies.
func TestKeyTypes(t *testing.T) {
	t.Parallel()
	for _, kt := range ca.KeyTypes() {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, kt)
			for _, name := range []string{ca.RootKeyFile, ca.IntermediateKeyFile, ca.TokenKeyFile} {
				st, err := os.Stat(filepath.Join(f.dir, name))
				if err != nil || st.Mode().Perm() != 0o600 {
					t.Fatalf("%s: mode %v (%v), want 0600", name, st.Mode().Perm(), err)
				}
			}
			iss, err := f.auth.Issue(context.Background(), ca.IssueRequest{Profile: "runner", Name: "r1", CSR: newCSR(t, newKey(t), csrOpts{})})
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if err := verifyChain(t, f.auth, iss.Leaf, x509.ExtKeyUsageClientAuth); err != nil {
				t.Fatalf("verify: %v", err)
			}
		})
	}
}

func TestOpenRefusals(t *testing.T) {
	t.Parallel()
	f := newEncryptedFixture(t, ca.KeyECP256)
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	if _, err := ca.Open(ca.Config{Dir: f.dir, Password: []byte("wrong password")}, st); !errors.Is(err, ca.ErrPassword) {
		t.Fatalf("wrong password: %v, want ErrPassword", err)
	}
	if _, err := ca.Open(ca.Config{Dir: f.dir}, st); !errors.Is(err, ca.ErrPassword) || !strings.Contains(err.Error(), "password-file") {
		t.Fatalf("missing password: %v, want ErrPassword with a hint", err)
	}
	if _, err := ca.Open(ca.Config{Dir: filepath.Join(t.TempDir(), "none"), Password: testPassword}, st); !errors.Is(err, ca.ErrNotInitialized) {
		t.Fatalf("missing dir: %v, want ErrNotInitialized", err)
	}
	key := filepath.Join(f.dir, ca.IntermediateKeyFile)
	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err = ca.Open(ca.Config{Dir: f.dir, Password: testPassword}, st)
	if !errors.Is(err, ca.ErrKeyPermissions) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable key: %v, want ErrKeyPermissions with a chmod hint", err)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}

	// The root key can go offline: issuing needs only the intermediate.
	if err := os.Rename(filepath.Join(f.dir, ca.RootKeyFile), filepath.Join(t.TempDir(), "offline.key")); err != nil {
		t.Fatal(err)
	}
	info, err := ca.ReadInfo(f.dir)
	if err != nil || info.RootKeyOnline {
		t.Fatalf("ReadInfo after moving the root key: online=%v, %v", info != nil && info.RootKeyOnline, err)
	}
	a := f.open(t)
	if _, err := a.Issue(context.Background(), ca.IssueRequest{Profile: "server", Hosts: []string{"gw"}, CSR: newCSR(t, newKey(t), csrOpts{})}); err != nil {
		t.Fatalf("issue with the root key offline: %v", err)
	}
}

func TestInitRefusals(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	for _, tc := range []struct {
		name string
		o    ca.InitOptions
		want string
	}{
		{"no password", ca.InitOptions{Name: "x"}, "--insecure-no-password"},
		{"short password", ca.InitOptions{Name: "x", Password: []byte("short")}, "at least 8"},
		{"both", ca.InitOptions{Name: "x", Password: testPassword, InsecureNoPassword: true}, "choose one"},
		{"bad key type", ca.InitOptions{Name: "x", KeyType: "dsa", Password: testPassword}, "dsa"},
		{"no name", ca.InitOptions{Password: testPassword}, "name is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.Init(dir, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("refused Init left %s behind", dir)
			}
		})
	}
	if _, err := ca.Init(dir, ca.InitOptions{Name: "x", InsecureNoPassword: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Init(dir, ca.InitOptions{Name: "x", InsecureNoPassword: true}); !errors.Is(err, ca.ErrAlreadyInitialized) {
		t.Fatalf("second Init: %v, want ErrAlreadyInitialized", err)
	}
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := ca.Open(ca.Config{Dir: dir}, st)
	if err != nil {
		t.Fatalf("open unencrypted CA without password: %v", err)
	}
	a.Close()
}
