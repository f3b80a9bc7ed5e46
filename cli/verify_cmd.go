package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/internal/release/minisign"
	"github.com/leashpki/leash/internal/release/sums"
)

// maxSumsSize bounds the SHA256SUMS and signature files verify reads.
const maxSumsSize = 1 << 20

func (r *runtime) verifyCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "verify",
		Usage: "check a release: the minisign signature over SHA256SUMS, then each file's SHA-256",
		Description: "verify first checks the signature of SHA256SUMS with the release public key (a minisign\n" +
			"key: the file, or its base64 line), then the SHA-256 of every FILE named on the command line,\n" +
			"which must be listed in SHA256SUMS. Without FILES it checks every listed file present next to\n" +
			"SHA256SUMS and skips (and names) the missing ones. Any failure exits non-zero.\n" +
			"The same set verifies with minisign: minisign -Vm SHA256SUMS -p leash-release.pub",
		ArgsUsage: "[FILE...]",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "pubkey", Usage: "release public key: a minisign public key file or its base64 line", Required: true},
			&ucli.StringFlag{Name: "sums", Usage: "checksum list (default: SHA256SUMS next to the first FILE, or in the current directory)"},
			&ucli.StringFlag{Name: "sig", Usage: "signature of the checksum list (default: the --sums path + .minisig)"},
		},
		Action: r.verify,
	}
}

func (r *runtime) verify(c *ucli.Context) error {
	files := c.Args().Slice()
	pub, err := readPublicKey(c.String("pubkey"))
	if err != nil {
		return err
	}
	sumsPath := c.String("sums")
	if sumsPath == "" {
		dir := "."
		if len(files) > 0 {
			dir = filepath.Dir(files[0])
		}
		sumsPath = filepath.Join(dir, "SHA256SUMS")
	}
	sigPath := c.String("sig")
	if sigPath == "" {
		sigPath = sumsPath + ".minisig"
	}
	list, err := readBounded(sumsPath)
	if err != nil {
		return fmt.Errorf("checksum list: %w", err)
	}
	sig, err := readBounded(sigPath)
	if err != nil {
		return fmt.Errorf("signature: %w (give it with --sig)", err)
	}
	comment, err := minisign.Verify(pub, list, sig)
	if err != nil {
		return fmt.Errorf("%s: %w", sigPath, err)
	}
	entries, err := sums.Parse(list)
	if err != nil {
		return fmt.Errorf("%s: %w", sumsPath, err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "signature OK: %s signed by key %s (trusted comment: %s)\n", sumsPath, pub.ID, comment)
	byName := make(map[string]sums.Entry, len(entries))
	for _, e := range entries {
		byName[e.Name] = e
	}
	type check struct{ path, name string }
	var checks []check
	if len(files) == 0 {
		dir := filepath.Dir(sumsPath)
		for _, e := range entries {
			p := filepath.Join(dir, e.Name)
			if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(w, "missing, skipped: %s\n", e.Name)
				continue
			}
			checks = append(checks, check{p, e.Name})
		}
		if len(checks) == 0 {
			return fmt.Errorf("none of the %d files listed in %s is in %s", len(entries), sumsPath, dir)
		}
	} else {
		for _, f := range files {
			checks = append(checks, check{f, filepath.Base(f)})
		}
	}
	var problems []string
	for _, ch := range checks {
		e, ok := byName[ch.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: not listed in %s", ch.path, sumsPath))
			continue
		}
		if err := checkRegular(ch.path); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		got, err := sums.File(ch.path)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if got != e.Sum {
			problems = append(problems, fmt.Sprintf("%s: TAMPERED: SHA-256 %x, SHA256SUMS says %x", ch.path, got, e.Sum))
			continue
		}
		fmt.Fprintf(w, "OK: %s\n", ch.path)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d of %d files failed verification:\n  %s", len(problems), len(checks), strings.Join(problems, "\n  "))
	}
	fmt.Fprintf(w, "verified %d files\n", len(checks))
	return nil
}

// readPublicKey takes a public key file or, when no such file exists, the
// key's base64 line itself.
func readPublicKey(arg string) (minisign.PublicKey, error) {
	b, err := os.ReadFile(arg)
	if errors.Is(err, fs.ErrNotExist) {
		if pub, perr := minisign.ParsePublicKey([]byte(arg)); perr == nil {
			return pub, nil
		}
	}
	if err != nil {
		return minisign.PublicKey{}, fmt.Errorf("public key: %w", err)
	}
	pub, err := minisign.ParsePublicKey(b)
	if err != nil {
		return minisign.PublicKey{}, fmt.Errorf("public key %s: %w", arg, err)
	}
	return pub, nil
}

// readBounded reads a small file, refusing one over maxSumsSize.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var b bytes.Buffer
	n, err := b.ReadFrom(io.LimitReader(f, maxSumsSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if n > maxSumsSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSumsSize)
	}
	return b.Bytes(), nil
}

// checkRegular refuses anything but a regular file (a directory, device
// or FIFO named like an artifact).
func checkRegular(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	return nil
}
