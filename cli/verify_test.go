package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leashpki/leash/cli"
	"github.com/leashpki/leash/internal/release/minisign"
)

// fakeRelease writes two artifacts, SHA256SUMS (raw, as given or built
// from the artifacts) and its signature by k into a new directory.
func fakeRelease(t *testing.T, k minisign.PrivateKey, list string) string {
	t.Helper()
	dir := t.TempDir()
	arts := map[string]string{"leash_v1_linux_amd64.tar.gz": "archive bytes", "leash_1_amd64.deb": "deb bytes"}
	var b strings.Builder
	for _, name := range []string{"leash_1_amd64.deb", "leash_v1_linux_amd64.tar.gz"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(arts[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%x  %s\n", sha256.Sum256([]byte(arts[name])), name)
	}
	if list == "" {
		list = b.String()
	}
	writeFile(t, filepath.Join(dir, "SHA256SUMS"), list)
	sig, err := minisign.Sign(k, []byte(list), "timestamp:1\tfile:SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "SHA256SUMS.minisig"), string(sig))
	writeFile(t, filepath.Join(dir, "release.pub"), string(k.Public().Marshal()))
	return dir
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerify runs leash verify against a good release and hostile ones:
// each must fail with a message that names the problem.
func TestVerify(t *testing.T) {
	k, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tarName := "leash_v1_linux_amd64.tar.gz"
	cases := []struct {
		name    string
		list    string                         // SHA256SUMS as signed; "" builds it
		change  func(t *testing.T, dir string) // after signing
		args    func(dir string) []string
		wantErr string // "" means success
		wantOut string
	}{
		{name: "whole directory", wantOut: "verified 2 files"},
		{name: "named file", args: func(d string) []string { return []string{filepath.Join(d, tarName)} }, wantOut: "verified 1 files"},
		{name: "bare public key line", args: func(d string) []string {
			b, _ := os.ReadFile(filepath.Join(d, "release.pub"))
			return []string{"--pubkey", strings.Split(string(b), "\n")[1], "--sums", filepath.Join(d, "SHA256SUMS")}
		}, wantOut: "verified 2 files"},
		{name: "missing artifact skipped", change: func(t *testing.T, d string) { _ = os.Remove(filepath.Join(d, "leash_1_amd64.deb")) },
			wantOut: "missing, skipped: leash_1_amd64.deb"},
		{name: "tampered byte in artifact", change: func(t *testing.T, d string) { writeFile(t, filepath.Join(d, tarName), "archive bytez") },
			wantErr: "TAMPERED"},
		{name: "tampered named artifact", change: func(t *testing.T, d string) { writeFile(t, filepath.Join(d, tarName), "Archive bytes") },
			args: func(d string) []string { return []string{filepath.Join(d, tarName)} }, wantErr: tarName + ": TAMPERED"},
		{name: "tampered SHA256SUMS line", change: func(t *testing.T, d string) {
			p := filepath.Join(d, "SHA256SUMS")
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256([]byte("evil"))
			lines := strings.SplitAfter(string(b), "\n")
			lines[1] = fmt.Sprintf("%x  %s\n", sum, tarName)
			writeFile(t, p, strings.Join(lines, ""))
		}, wantErr: "bad signature"},
		{name: "signature from another key", change: func(t *testing.T, d string) {
			writeFile(t, filepath.Join(d, "release.pub"), string(other.Public().Marshal()))
		}, wantErr: "signature is from another key"},
		{name: "another key claiming the key id", change: func(t *testing.T, d string) {
			impostor := other
			impostor.ID = k.ID
			writeFile(t, filepath.Join(d, "release.pub"), string(impostor.Public().Marshal()))
		}, wantErr: "bad signature"},
		{name: "truncated signature", change: func(t *testing.T, d string) {
			p := filepath.Join(d, "SHA256SUMS.minisig")
			b, _ := os.ReadFile(p)
			writeFile(t, p, string(b[:len(b)-30]))
		}, wantErr: "malformed minisign file"},
		{name: "missing signature", change: func(t *testing.T, d string) { _ = os.Remove(filepath.Join(d, "SHA256SUMS.minisig")) },
			wantErr: "signature:"},
		{name: "malformed public key", change: func(t *testing.T, d string) { writeFile(t, filepath.Join(d, "release.pub"), "hello\n") },
			wantErr: "public key"},
		{name: "file not listed", change: func(t *testing.T, d string) { writeFile(t, filepath.Join(d, "extra.zip"), "x") },
			args: func(d string) []string { return []string{filepath.Join(d, "extra.zip")} }, wantErr: "not listed in"},
		{name: "signed parent path", list: fmt.Sprintf("%x  ../x\n", sha256.Sum256(nil)), wantErr: "directory part"},
		{name: "signed absolute path", list: fmt.Sprintf("%x  /etc/passwd\n", sha256.Sum256(nil)), wantErr: "directory part"},
		{name: "signed garbage", list: "not a checksum line\n", wantErr: "malformed SHA256SUMS"},
		{name: "nothing present", list: fmt.Sprintf("%x  gone.tar.gz\n", sha256.Sum256(nil)), wantErr: "none of the 1 files"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := fakeRelease(t, k, c.list)
			if c.change != nil {
				c.change(t, dir)
			}
			args := []string{"leash", "verify", "--pubkey", filepath.Join(dir, "release.pub"), "--sums", filepath.Join(dir, "SHA256SUMS")}
			if c.args != nil {
				extra := c.args(dir)
				if len(extra) > 0 && extra[0] == "--pubkey" {
					args = append([]string{"leash", "verify"}, extra...)
				} else {
					args = append(args, extra...)
				}
			}
			var out, errOut bytes.Buffer
			code := cli.Run(context.Background(), cli.Env{Stdout: &out, Stderr: &errOut}, args)
			if c.wantErr == "" {
				if code != 0 || !strings.Contains(out.String(), c.wantOut) {
					t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
				}
				return
			}
			if code == 0 || !strings.Contains(errOut.String(), c.wantErr) {
				t.Fatalf("exit %d, want failure with %q; stdout:\n%s\nstderr:\n%s", code, c.wantErr, out.String(), errOut.String())
			}
		})
	}
}
