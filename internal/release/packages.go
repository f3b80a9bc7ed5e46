package release

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"
)

// Where the packages put things.
const (
	binDir     = "/usr/bin"
	unitDir    = "/usr/lib/systemd/system"
	unitSrcDir = "deploy/systemd" // in the module, written by the deploy kit
)

// pkgSpec is one of the two packages: the gateway and CLI, or the runner.
type pkgSpec struct {
	name, description string
	binary            func(binaries) string
	unit              string // systemd unit file name under unitSrcDir
	stateDir          string // created for the leash user on install
}

func pkgSpecs() []pkgSpec {
	return []pkgSpec{
		{"leash", "Leash: PKI-centric mTLS gateway, embedded CA and operator CLI",
			func(b binaries) string { return b.Leash }, "leash-gateway.service", "/var/lib/leash"},
		{"leash-runner", "Leash runner: dials out to a Leash gateway over mTLS and runs the jobs and tunnels it allows",
			func(b binaries) string { return b.Runner }, "leash-runner.service", "/var/lib/leash-runner"},
	}
}

// postInstall creates the leash system user and the state directory, and
// reloads systemd. It enables and starts nothing: configuration comes
// first.
const postInstall = `#!/bin/sh
set -e
if ! getent group leash >/dev/null 2>&1; then
	groupadd --system leash 2>/dev/null || addgroup --system leash
fi
if ! getent passwd leash >/dev/null 2>&1; then
	useradd --system --gid leash --home-dir /var/lib/leash --no-create-home \
		--shell /usr/sbin/nologin --comment "Leash" leash 2>/dev/null ||
	adduser --system --ingroup leash --home /var/lib/leash --no-create-home \
		--shell /usr/sbin/nologin leash
fi
install -d -o leash -g leash -m 0750 %s
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
fi
`

const postRemove = `#!/bin/sh
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
fi
`

var semverRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$`)

// packageVersion turns the release version into one deb and rpm accept:
// semver as is (nfpm orders pre-releases), anything else (a git hash,
// "dev") as a 0.0.0 pre-release.
func packageVersion(v string) string {
	if semverRE.MatchString(v) {
		return strings.TrimPrefix(v, "v")
	}
	return "0.0.0-" + strings.NewReplacer("_", ".", "+", ".").Replace(v)
}

// writePackages writes the .deb and .rpm of both packages for a linux
// target. Units missing from deploy/systemd are left out and noted.
func writePackages(cfg Config, t Target, b binaries, stage string) (names, notes []string, err error) {
	scripts := filepath.Join(stage, "scripts")
	if err := os.MkdirAll(scripts, 0o755); err != nil {
		return nil, nil, fmt.Errorf("release: %w", err)
	}
	rm := filepath.Join(scripts, "postremove.sh")
	if err := os.WriteFile(rm, []byte(postRemove), 0o755); err != nil {
		return nil, nil, fmt.Errorf("release: %w", err)
	}
	packagers := []struct {
		format string
		p      nfpm.Packager
	}{{"deb", deb.Default}, {"rpm", rpm.DefaultRPM}}
	for _, spec := range pkgSpecs() {
		inst := filepath.Join(scripts, spec.name+"-postinstall.sh")
		if err := os.WriteFile(inst, fmt.Appendf(nil, postInstall, spec.stateDir), 0o755); err != nil {
			return nil, nil, fmt.Errorf("release: %w", err)
		}
		contents := files.Contents{{
			Source: spec.binary(b), Destination: binDir + "/" + filepath.Base(spec.binary(b)),
			FileInfo: &files.ContentFileInfo{Mode: 0o755, Owner: "root", Group: "root"},
		}}
		unit := filepath.Join(cfg.ModuleDir, unitSrcDir, spec.unit)
		if _, err := os.Stat(unit); err == nil {
			contents = append(contents, &files.Content{Source: unit, Destination: unitDir + "/" + spec.unit,
				FileInfo: &files.ContentFileInfo{Mode: 0o644, Owner: "root", Group: "root"}})
		} else {
			notes = append(notes, fmt.Sprintf("%s/%s not found: packages built without it", unitSrcDir, spec.unit))
		}
		for _, pk := range packagers {
			info := &nfpm.Info{
				Name: spec.name, Arch: t.Arch, Platform: "linux",
				Version: packageVersion(cfg.Version), Release: "1",
				Maintainer: "Leash maintainers <leash@leashpki.dev>", Vendor: "Leash",
				Homepage: "https://github.com/leashpki/leash", License: "Proprietary",
				Description: spec.description, Section: "net", Priority: "optional",
				MTime: cfg.Date,
				Overridables: nfpm.Overridables{
					Contents: contents,
					Scripts:  nfpm.Scripts{PostInstall: inst, PostRemove: rm},
					RPM:      nfpm.RPM{Summary: spec.description, Group: "Applications/Internet", BuildHost: "leash-release"},
				},
			}
			info = nfpm.WithDefaults(info)
			if err := nfpm.PrepareForPackager(info, pk.format); err != nil {
				return nil, nil, fmt.Errorf("release: %s %s: %w", spec.name, pk.format, err)
			}
			name := pk.p.ConventionalFileName(info)
			if err := writePackage(pk.p, info, filepath.Join(cfg.OutDir, name)); err != nil {
				return nil, nil, fmt.Errorf("release: %s: %w", name, err)
			}
			fmt.Fprintf(cfg.Log, "wrote %s\n", name)
			names = append(names, name)
		}
	}
	return names, notes, nil
}

func writePackage(p nfpm.Packager, info *nfpm.Info, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := p.Package(info, f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
