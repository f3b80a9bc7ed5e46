package minisign_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leashpki/leash/internal/release/minisign"
	"github.com/leashpki/leash/internal/testenv"
)

func newKey(t *testing.T) minisign.PrivateKey {
	t.Helper()
	k, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSignVerify covers the round trip and every way a signature must fail.
func TestSignVerify(t *testing.T) {
	k := newKey(t)
	msg := []byte("abc  leash.tar.gz\n")
	sig, err := minisign.Sign(k, msg, "timestamp:1\tfile:SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := minisign.Verify(k.Public(), msg, sig); err != nil || c != "timestamp:1\tfile:SHA256SUMS" {
		t.Fatalf("Verify = %q, %v", c, err)
	}
	other := newKey(t)
	sameID := other
	sameID.ID = k.ID
	lines := strings.SplitAfter(string(sig), "\n")
	cases := []struct {
		name string
		pub  minisign.PublicKey
		msg  []byte
		sig  []byte
		want error
	}{
		{"tampered message", k.Public(), []byte("abd  leash.tar.gz\n"), sig, minisign.ErrSignature},
		{"another key", other.Public(), msg, sig, minisign.ErrKeyID},
		{"another key claiming the id", sameID.Public(), msg, sig, minisign.ErrSignature},
		{"tampered trusted comment", k.Public(), msg,
			[]byte(lines[0] + lines[1] + "trusted comment: timestamp:2\tfile:SHA256SUMS\n" + lines[3]), minisign.ErrSignature},
		{"truncated", k.Public(), msg, sig[:len(sig)/2], minisign.ErrMalformed},
		{"truncated base64", k.Public(), msg, []byte(lines[0] + lines[1][:40] + "\n" + lines[2] + lines[3]), minisign.ErrMalformed},
		{"empty", k.Public(), msg, nil, minisign.ErrMalformed},
		{"extra line", k.Public(), msg, append(bytes.Clone(sig), "x\n"...), minisign.ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := minisign.Verify(c.pub, c.msg, c.sig); !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v; want %v", err, c.want)
			}
		})
	}
}

// TestKeyFiles: keys survive marshal/parse; broken and encrypted secret
// keys are refused.
func TestKeyFiles(t *testing.T) {
	k := newKey(t)
	got, err := minisign.ParsePrivateKey(k.Marshal())
	if err != nil || got.ID != k.ID || !got.Key.Equal(k.Key) {
		t.Fatalf("secret key round trip: %v", err)
	}
	pub, err := minisign.ParsePublicKey(k.Public().Marshal())
	if err != nil || pub.ID != k.ID || !pub.Key.Equal(k.Public().Key) {
		t.Fatalf("public key round trip: %v", err)
	}
	bare := strings.Split(string(k.Public().Marshal()), "\n")[1]
	if _, err := minisign.ParsePublicKey([]byte(bare)); err != nil {
		t.Fatalf("bare public key line: %v", err)
	}
	sec := k.Marshal()
	flipped := bytes.Clone(sec)
	flipped[len(flipped)-10] ^= 1 // inside the checksum's base64
	if _, err := minisign.ParsePrivateKey(flipped); !errors.Is(err, minisign.ErrMalformed) {
		t.Fatalf("tampered secret key: %v", err)
	}
	if _, err := minisign.ParsePublicKey([]byte("untrusted comment: x\nRWQ=\n")); !errors.Is(err, minisign.ErrMalformed) {
		t.Fatalf("short public key: %v", err)
	}
}

// TestMinisignInterop checks the formats against the minisign tool when it
// is installed (Debian package minisign): minisign verifies our signature
// and signs with our secret key; we verify its signature.
func TestMinisignInterop(t *testing.T) {
	bin := testenv.RequireTool(t, "minisign", "minisign")
	dir := t.TempDir()
	k := newKey(t)
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	msg := []byte("0123  file\n")
	msgPath := write("SHA256SUMS", msg, 0o644)
	pubPath := write("k.pub", k.Public().Marshal(), 0o644)
	secPath := write("k.key", k.Marshal(), 0o600)
	sig, err := minisign.Sign(k, msg, "leash test")
	if err != nil {
		t.Fatal(err)
	}
	write("SHA256SUMS.minisig", sig, 0o644)
	if out, err := exec.Command(bin, "-Vm", msgPath, "-p", pubPath).CombinedOutput(); err != nil {
		t.Fatalf("minisign rejects our signature: %v\n%s", err, out)
	}
	other := write("other", []byte("other file\n"), 0o644)
	cmd := exec.Command(bin, "-S", "-s", secPath, "-m", other, "-t", "signed by minisign")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("minisign cannot sign with our secret key: %v\n%s", err, out)
	}
	theirs, err := os.ReadFile(other + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := minisign.Verify(k.Public(), []byte("other file\n"), theirs); err != nil || c != "signed by minisign" {
		t.Fatalf("minisign's signature: %q, %v", c, err)
	}
	if _, err := minisign.Verify(k.Public(), []byte("other file!\n"), theirs); !errors.Is(err, minisign.ErrSignature) {
		t.Fatalf("minisign's signature over a changed file: %v", err)
	}
}
