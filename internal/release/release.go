// Package release builds a Leash release: leash (CLI and gateway) and
// leash-runner cross-built for linux, darwin and windows on amd64 and
// arm64 with the version stamped in; one archive per target (tar.gz, zip
// for windows); .deb and .rpm packages for linux (nfpm as a library); a
// Homebrew formula filled from a template; SHA256SUMS over all of them;
// and a minisign signature of SHA256SUMS that `leash verify` (and minisign
// itself) checks.
//
// The flow of Build: check the config, load the signing key (or make a
// throwaway one when asked), build the binaries into a staging directory,
// pack archives and packages into the output directory, fill the formula,
// then write and sign SHA256SUMS last, so the signature covers exactly the
// files that were produced.
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/leashpki/leash/internal/release/minisign"
	"github.com/leashpki/leash/internal/release/sums"
)

// Target is one GOOS/GOARCH pair.
type Target struct{ OS, Arch string }

func (t Target) String() string { return t.OS + "/" + t.Arch }

// exe is the executable suffix on the target.
func (t Target) exe() string {
	if t.OS == "windows" {
		return ".exe"
	}
	return ""
}

// DefaultTargets is the release matrix.
func DefaultTargets() []Target {
	var ts []Target
	for _, os := range []string{"linux", "darwin", "windows"} {
		for _, arch := range []string{"amd64", "arm64"} {
			ts = append(ts, Target{os, arch})
		}
	}
	return ts
}

// ParseTargets reads "linux/amd64,darwin/arm64".
func ParseTargets(s string) ([]Target, error) {
	var ts []Target
	for _, part := range strings.Split(s, ",") {
		goos, arch, ok := strings.Cut(strings.TrimSpace(part), "/")
		t := Target{goos, arch}
		if !ok || !supported(t) {
			return nil, fmt.Errorf("target %q: want one of %v", part, DefaultTargets())
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func supported(t Target) bool {
	for _, d := range DefaultTargets() {
		if d == t {
			return true
		}
	}
	return false
}

// Config says what to build.
type Config struct {
	Version   string   // e.g. v1.2.0; stamped into both binaries and every name
	OutDir    string   // created; must not hold a previous release
	ModuleDir string   // the repository root (go.mod, deploy/)
	Targets   []Target // default DefaultTargets
	// Packages builds .deb and .rpm for the linux targets.
	Packages bool
	// KeyPath is the minisign secret key (mode 0600) that signs SHA256SUMS.
	KeyPath string
	// ThrowawayKey, when KeyPath is empty, generates a key pair into
	// OutDir (for trying the release locally; not for publishing).
	ThrowawayKey bool
	// URLBase is where the archives will be downloadable, for the
	// Homebrew formula (default: the GitHub release of Version).
	URLBase string
	Go      string    // go command (default "go")
	Date    time.Time // timestamps inside archives and packages (default now)
	Log     io.Writer // progress (default discard)
}

// Artifact is one file of the release that SHA256SUMS lists.
type Artifact struct {
	Name string // base name in OutDir
	Size int64
}

// Result lists what Build wrote.
type Result struct {
	Artifacts []Artifact
	Sums      string // SHA256SUMS path
	Signature string // SHA256SUMS.minisig path
	PublicKey string // the public key that verifies Signature
	KeyID     string
	Notes     []string // things left out, e.g. systemd units not found
}

// File names of the release outputs that are not artifacts.
const (
	SumsName      = "SHA256SUMS"
	SigName       = SumsName + ".minisig"
	PublicKeyName = "leash-release.pub"
	ThrowawayName = "leash-release-throwaway.key"
)

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

func (c *Config) check() error {
	var errs []error
	if !versionRE.MatchString(c.Version) {
		errs = append(errs, fmt.Errorf("version %q: want letters, digits and ._+- (e.g. v1.2.0)", c.Version))
	}
	if c.OutDir == "" {
		errs = append(errs, errors.New("an output directory is required"))
	}
	if c.KeyPath == "" && !c.ThrowawayKey {
		errs = append(errs, errors.New("a signing key is required (or ask for a throwaway key)"))
	}
	if _, err := os.Stat(filepath.Join(c.ModuleDir, "go.mod")); err != nil {
		errs = append(errs, fmt.Errorf("module dir: %w", err))
	}
	for _, t := range c.Targets {
		if !supported(t) {
			errs = append(errs, fmt.Errorf("unsupported target %s", t))
		}
	}
	return errors.Join(errs...)
}

// Build makes the release described by cfg.
func Build(ctx context.Context, cfg Config) (*Result, error) {
	if len(cfg.Targets) == 0 {
		cfg.Targets = DefaultTargets()
	}
	if cfg.Go == "" {
		cfg.Go = "go"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Date.IsZero() {
		cfg.Date = time.Now()
	}
	cfg.Date = cfg.Date.UTC().Truncate(time.Second)
	if cfg.URLBase == "" {
		cfg.URLBase = "https://github.com/leashpki/leash/releases/download/" + cfg.Version
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if entries, err := os.ReadDir(cfg.OutDir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("release: %s is not empty; remove it or choose another --out", cfg.OutDir)
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	res := &Result{}
	key, err := signingKey(cfg, res)
	if err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp("", "leash-release-*")
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	defer func() { _ = os.RemoveAll(stage) }()

	var names []string
	for _, t := range cfg.Targets {
		bins, err := buildBinaries(ctx, cfg, t, filepath.Join(stage, t.OS+"_"+t.Arch))
		if err != nil {
			return nil, err
		}
		name, err := writeArchive(cfg, t, bins)
		if err != nil {
			return nil, err
		}
		names = append(names, name)
		if cfg.Packages && t.OS == "linux" {
			pkgs, notes, err := writePackages(cfg, t, bins, stage)
			if err != nil {
				return nil, err
			}
			names = append(names, pkgs...)
			res.Notes = appendNew(res.Notes, notes...)
		}
	}
	formula, err := writeFormula(cfg)
	if err != nil {
		return nil, err
	}
	if formula != "" {
		names = append(names, formula)
	} else {
		res.Notes = append(res.Notes, "no darwin and linux archives for the Homebrew formula; none written")
	}
	if err := signSums(cfg, key, names, res); err != nil {
		return nil, err
	}
	return res, nil
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		found := false
		for _, l := range list {
			found = found || l == it
		}
		if !found {
			list = append(list, it)
		}
	}
	return list
}

// signSums writes SHA256SUMS over names and its signature.
func signSums(cfg Config, key minisign.PrivateKey, names []string, res *Result) error {
	var entries []sums.Entry
	for _, n := range names {
		p := filepath.Join(cfg.OutDir, n)
		sum, err := sums.File(p)
		if err != nil {
			return fmt.Errorf("release: %w", err)
		}
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("release: %w", err)
		}
		entries = append(entries, sums.Entry{Name: n, Sum: sum})
		res.Artifacts = append(res.Artifacts, Artifact{Name: n, Size: st.Size()})
	}
	list, err := sums.Format(entries)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	comment := fmt.Sprintf("timestamp:%d\tfile:%s\tleash %s", cfg.Date.Unix(), SumsName, cfg.Version)
	sig, err := minisign.Sign(key, list, comment)
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	res.Sums = filepath.Join(cfg.OutDir, SumsName)
	res.Signature = filepath.Join(cfg.OutDir, SigName)
	if err := os.WriteFile(res.Sums, list, 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if err := os.WriteFile(res.Signature, sig, 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	res.PublicKey = filepath.Join(cfg.OutDir, PublicKeyName)
	res.KeyID = key.ID.String()
	if err := os.WriteFile(res.PublicKey, key.Public().Marshal(), 0o644); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	fmt.Fprintf(cfg.Log, "signed %s with key %s\n", SumsName, key.ID)
	return nil
}
