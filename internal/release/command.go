package release

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

const usage = `usage:
  release keygen -secret FILE -public FILE
  release build -version V -out DIR (-key FILE | -throwaway-key) [-targets os/arch,...] [-packages=false] [-url-base URL]
`

// Main is the release command; it returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "keygen":
		err = keygenCmd(args[1:], stdout, stderr)
	case "build":
		err = buildCmd(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "release:", err)
		return 1
	}
	return 0
}

func keygenCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", "leash-release.key", "secret key file to create (mode 0600)")
	public := fs.String("public", PublicKeyName, "public key file to create")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pub, err := GenerateKey(*secret, *public)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s: secret %s (keep it offline, mode 0600), public %s\n", pub.ID, *secret, *public)
	return nil
}

func buildCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := Config{Log: stdout, ModuleDir: "."}
	var targets string
	fs.StringVar(&cfg.Version, "version", "", "release version, e.g. v1.2.0")
	fs.StringVar(&cfg.OutDir, "out", "dist", "output directory (must be empty or absent)")
	fs.StringVar(&cfg.KeyPath, "key", "", "minisign secret key that signs SHA256SUMS")
	fs.BoolVar(&cfg.ThrowawayKey, "throwaway-key", false, "without -key: generate a throwaway key pair into -out")
	fs.BoolVar(&cfg.Packages, "packages", true, "build .deb and .rpm for the linux targets")
	fs.StringVar(&targets, "targets", "", "comma-separated os/arch list (default: linux, darwin, windows x amd64, arm64)")
	fs.StringVar(&cfg.URLBase, "url-base", "", "download URL of the archives, for the Homebrew formula")
	fs.StringVar(&cfg.ModuleDir, "module", ".", "repository root")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if targets != "" {
		ts, err := ParseTargets(targets)
		if err != nil {
			return err
		}
		cfg.Targets = ts
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		cfg.Date = time.Unix(sec, 0)
	}
	res, err := Build(ctx, cfg)
	if err != nil {
		return err
	}
	for _, a := range res.Artifacts {
		fmt.Fprintf(stdout, "%10d  %s\n", a.Size, a.Name)
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stdout, "note:", n)
	}
	fmt.Fprintf(stdout, "%s and %s signed by key %s; check with:\n  leash verify --pubkey %s --sums %s\n  minisign -Vm %s -p %s\n",
		SumsName, SigName, res.KeyID, res.PublicKey, res.Sums, res.Sums, res.PublicKey)
	return nil
}
