package release

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// archiveName is the archive of target t: leash_<version>_<os>_<arch>.
func archiveName(version string, t Target) string {
	ext := ".tar.gz"
	if t.OS == "windows" {
		ext = ".zip"
	}
	return archiveBase(version, t) + ext
}

func archiveBase(version string, t Target) string {
	return fmt.Sprintf("leash_%s_%s_%s", version, t.OS, t.Arch)
}

// archiveMember is one file put into an archive.
type archiveMember struct {
	src, name string
	mode      fs.FileMode
}

// writeArchive packs the binaries of t and the README into one archive
// whose members sit under a leash_<version>_<os>_<arch>/ directory.
func writeArchive(cfg Config, t Target, b binaries) (string, error) {
	base := archiveBase(cfg.Version, t)
	members := []archiveMember{
		{b.Leash, base + "/leash" + t.exe(), 0o755},
		{b.Runner, base + "/leash-runner" + t.exe(), 0o755},
	}
	for _, doc := range []string{"README.md", "LICENSE"} {
		p := filepath.Join(cfg.ModuleDir, doc)
		if _, err := os.Stat(p); err == nil {
			members = append(members, archiveMember{p, base + "/" + doc, 0o644})
		}
	}
	name := archiveName(cfg.Version, t)
	path := filepath.Join(cfg.OutDir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	if t.OS == "windows" {
		err = writeZip(f, members, cfg)
	} else {
		err = writeTarGz(f, members, cfg)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("release: %s: %w", name, err)
	}
	fmt.Fprintf(cfg.Log, "wrote %s\n", name)
	return name, nil
}

func writeTarGz(w io.Writer, members []archiveMember, cfg Config) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, m := range members {
		err := copyMember(m, func(size int64) (io.Writer, error) {
			return tw, tw.WriteHeader(&tar.Header{Name: m.name, Mode: int64(m.mode), Size: size,
				ModTime: cfg.Date, Typeflag: tar.TypeReg, Uname: "root", Gname: "root", Format: tar.FormatPAX})
		})
		if err != nil {
			return err
		}
	}
	return errors.Join(tw.Close(), gz.Close())
}

func writeZip(w io.Writer, members []archiveMember, cfg Config) error {
	zw := zip.NewWriter(w)
	for _, m := range members {
		err := copyMember(m, func(int64) (io.Writer, error) {
			h := &zip.FileHeader{Name: m.name, Method: zip.Deflate, Modified: cfg.Date}
			h.SetMode(m.mode)
			return zw.CreateHeader(h)
		})
		if err != nil {
			return err
		}
	}
	return zw.Close()
}

// copyMember copies m's source into the writer open returns.
func copyMember(m archiveMember, open func(size int64) (io.Writer, error)) error {
	src, err := os.Open(m.src)
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	dst, err := open(st.Size())
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	return err
}
