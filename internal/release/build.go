package release

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Module paths of the version variables set with -X.
const (
	cliVersionVar    = "github.com/leashpki/leash/cli.version"
	runnerVersionVar = "main.version"
)

// binaries are the built executables of one target.
type binaries struct {
	Leash, Runner string // paths
}

// buildBinaries cross-compiles leash and leash-runner for t into dir:
// CGO off, -trimpath, stripped, the version stamped in.
func buildBinaries(ctx context.Context, cfg Config, t Target, dir string) (binaries, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return binaries{}, fmt.Errorf("release: %w", err)
	}
	b := binaries{
		Leash:  filepath.Join(dir, "leash"+t.exe()),
		Runner: filepath.Join(dir, "leash-runner"+t.exe()),
	}
	builds := []struct{ out, pkg, versionVar string }{
		{b.Leash, "./cmd/leash", cliVersionVar},
		{b.Runner, "./cmd/leash-runner", runnerVersionVar},
	}
	for _, bd := range builds {
		fmt.Fprintf(cfg.Log, "build %s %s\n", t, bd.pkg)
		if err := GoBuild(ctx, cfg.Go, cfg.ModuleDir, t, bd.pkg, bd.out,
			"-s -w -X "+bd.versionVar+"="+cfg.Version); err != nil {
			return binaries{}, err
		}
	}
	return b, nil
}

// GoBuild runs go build for t with the release flags.
func GoBuild(ctx context.Context, goCmd, moduleDir string, t Target, pkg, out, ldflags string) error {
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+t.OS, "GOARCH="+t.Arch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("release: go build %s for %s: %w\n%s", pkg, t, err, stderr.Bytes())
	}
	return nil
}
