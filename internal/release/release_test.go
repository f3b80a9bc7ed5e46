package release_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/cli"
	"github.com/leashpki/leash/internal/release"
	"github.com/leashpki/leash/internal/release/sums"
	"github.com/leashpki/leash/internal/testenv"
)

// TestRelease builds a reduced release (linux/amd64 with packages), checks
// every artifact's structure, the runner's size, that leash verify accepts
// the set and refuses a tampered artifact; then cross-compiles the runner
// for windows and darwin.
func TestRelease(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "dist")
	module, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := release.Build(ctx, release.Config{
		Version: "v0.0.1-test", OutDir: out, ModuleDir: module, Packages: true, ThrowawayKey: true,
		Targets: []release.Target{{OS: "linux", Arch: "amd64"}}, Log: &log,
	})
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, log.String())
	}
	t.Logf("build log:\n%s", log.String())
	names := map[string]int64{}
	for _, a := range res.Artifacts {
		names[a.Name] = a.Size
		t.Logf("%10d  %s", a.Size, a.Name)
	}
	for _, want := range []string{"leash_v0.0.1-test_linux_amd64.tar.gz", "leash_0.0.1~test-1_amd64.deb",
		"leash-runner_0.0.1~test-1_amd64.deb", "leash-0.0.1~test-1.x86_64.rpm", "leash-runner-0.0.1~test-1.x86_64.rpm", "leash.rb"} {
		if _, ok := names[want]; !ok {
			t.Errorf("no artifact %s in %v", want, names)
		}
	}
	if st, err := os.Stat(filepath.Join(out, release.ThrowawayName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("throwaway key: %v (want mode 0600)", err)
	}

	t.Run("archive", func(t *testing.T) {
		members := tarMembers(t, filepath.Join(out, "leash_v0.0.1-test_linux_amd64.tar.gz"))
		dir := filepath.Join(t.TempDir(), "x")
		for _, bin := range []string{"leash", "leash-runner"} {
			b, ok := members["leash_v0.0.1-test_linux_amd64/"+bin]
			if !ok {
				t.Fatalf("archive lacks %s: %v", bin, keys(members))
			}
			if !bytes.HasPrefix(b, []byte("\x7fELF")) {
				t.Fatalf("%s is not an ELF binary", bin)
			}
			if bin == "leash-runner" {
				const limit = 12 << 20
				t.Logf("stripped linux/amd64 leash-runner: %.1f MiB (limit 12 MiB)", float64(len(b))/(1<<20))
				if len(b) > limit {
					t.Errorf("leash-runner is %d bytes, over %d", len(b), limit)
				}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, bin)
			if err := os.WriteFile(p, b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// The version is stamped in.
		got, err := exec.Command(filepath.Join(dir, "leash"), "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(got), "v0.0.1-test") {
			t.Errorf("leash --version = %q, %v", got, err)
		}
	})

	t.Run("deb", func(t *testing.T) {
		for _, name := range []string{"leash_0.0.1~test-1_amd64.deb", "leash-runner_0.0.1~test-1_amd64.deb"} {
			p := filepath.Join(out, name)
			checkAr(t, p, "debian-binary", "control.tar", "data.tar")
			dpkg, err := exec.LookPath("dpkg-deb")
			if err != nil {
				if testenv.InCI() {
					t.Fatal("CI requires dpkg-deb (Debian package dpkg)")
				}
				t.Log("dpkg-deb not installed: checked the ar structure only")
				continue
			}
			info, err := exec.Command(dpkg, "--info", p).CombinedOutput()
			if err != nil || !strings.Contains(string(info), "Version: 0.0.1~test-1") || !strings.Contains(string(info), "postinst") {
				t.Errorf("dpkg-deb --info %s: %v\n%s", name, err, info)
			}
			contents, err := exec.Command(dpkg, "--contents", p).CombinedOutput()
			bin := strings.SplitN(name, "_", 2)[0]
			if err != nil || !strings.Contains(string(contents), "./usr/bin/"+bin) {
				t.Errorf("dpkg-deb --contents %s: %v\n%s", name, err, contents)
			}
			unit := map[string]string{"leash": "leash-gateway.service", "leash-runner": "leash-runner.service"}[bin]
			if _, err := os.Stat(filepath.Join(module, "deploy/systemd", unit)); err == nil &&
				!strings.Contains(string(contents), "./usr/lib/systemd/system/"+unit) {
				t.Errorf("%s lacks %s:\n%s", name, unit, contents)
			}
		}
	})

	t.Run("rpm", func(t *testing.T) {
		for _, name := range []string{"leash-0.0.1~test-1.x86_64.rpm", "leash-runner-0.0.1~test-1.x86_64.rpm"} {
			p := filepath.Join(out, name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			// The 96-byte lead starts with ed ab ee db; the signature
			// header that follows with the header magic 8e ad e8.
			if len(b) < 100 || !bytes.HasPrefix(b, []byte{0xed, 0xab, 0xee, 0xdb}) || !bytes.HasPrefix(b[96:], []byte{0x8e, 0xad, 0xe8}) {
				t.Fatalf("%s: no rpm lead and header magic", name)
			}
			rpm, err := exec.LookPath("rpm")
			if err != nil {
				if testenv.InCI() {
					t.Fatal("CI requires rpm (Debian package rpm)")
				}
				t.Log("rpm not installed: checked the lead and header magic only")
				continue
			}
			q, err := exec.Command(rpm, "-qpl", p).CombinedOutput()
			bin := strings.SplitN(name, "-0.0.1", 2)[0]
			if err != nil || !strings.Contains(string(q), "/usr/bin/"+bin) {
				t.Errorf("rpm -qpl %s: %v\n%s", name, err, q)
			}
		}
	})

	t.Run("sums and verify", func(t *testing.T) {
		list, err := os.ReadFile(res.Sums)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := sums.Parse(list)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(res.Artifacts) {
			t.Fatalf("SHA256SUMS lists %d files, the release has %d", len(entries), len(res.Artifacts))
		}
		for _, e := range entries {
			got, err := sums.File(filepath.Join(out, e.Name))
			if err != nil || got != e.Sum {
				t.Errorf("%s: SHA256SUMS line does not match the file (%v)", e.Name, err)
			}
		}
		verify := func(files ...string) (int, string) {
			var o, e bytes.Buffer
			args := append([]string{"leash", "verify", "--pubkey", res.PublicKey, "--sums", res.Sums}, files...)
			code := cli.Run(context.Background(), cli.Env{Stdout: &o, Stderr: &e}, args)
			return code, o.String() + e.String()
		}
		if code, msg := verify(); code != 0 || !strings.Contains(msg, "verified 6 files") {
			t.Fatalf("leash verify refuses the release (exit %d):\n%s", code, msg)
		}
		deb := filepath.Join(out, "leash-runner_0.0.1~test-1_amd64.deb")
		b, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x01
		if err := os.WriteFile(deb, b, 0o644); err != nil {
			t.Fatal(err)
		}
		code, msg := verify(deb)
		if code == 0 || !strings.Contains(msg, "leash-runner_0.0.1~test-1_amd64.deb: TAMPERED") {
			t.Fatalf("leash verify accepts a tampered .deb (exit %d):\n%s", code, msg)
		}
		if code, _ := verify(); code == 0 {
			t.Fatal("leash verify of the whole directory accepts a tampered .deb")
		}
	})

	t.Run("runner cross-compiles", func(t *testing.T) {
		for _, tg := range []release.Target{{OS: "windows", Arch: "amd64"}, {OS: "darwin", Arch: "arm64"}} {
			bin := filepath.Join(t.TempDir(), "leash-runner")
			if err := release.GoBuild(ctx, "go", module, tg, "./cmd/leash-runner", bin, "-s -w"); err != nil {
				t.Errorf("%s: %v", tg, err)
			}
		}
	})
}

func tarMembers(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	m := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		m[h.Name] = b
	}
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// checkAr checks the file is an ar archive whose members start with the
// given prefixes, in order (the .deb layout).
func checkAr(t *testing.T, path string, prefixes ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("!<arch>\n")) {
		t.Fatalf("%s is not an ar archive", path)
	}
	off := 8
	var got []string
	for off+60 <= len(b) {
		name := strings.TrimRight(strings.TrimSpace(string(b[off:off+16])), "/")
		var size int
		if _, err := fmt.Sscan(strings.TrimSpace(string(b[off+48:off+58])), &size); err != nil {
			t.Fatalf("%s: ar header of %s: %v", path, name, err)
		}
		got = append(got, name)
		off += 60 + size + size%2
	}
	if len(got) != len(prefixes) {
		t.Fatalf("%s members %v; want %v", path, got, prefixes)
	}
	for i, p := range prefixes {
		if !strings.HasPrefix(got[i], p) {
			t.Fatalf("%s members %v; want %v", path, got, prefixes)
		}
	}
}
