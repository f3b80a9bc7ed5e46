// Package sums writes and reads SHA256SUMS files in the format of
// sha256sum(1): one "<64 hex digits>  <name>" line per file (" *<name>"
// is read too). Leash releases list bare file names only; a name with a
// directory part, an absolute path, "." or ".." or a control character
// makes the whole file malformed, so a signed list can never point a
// checker outside the release directory.
package sums

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// ErrMalformed means a SHA256SUMS file does not parse or names a path.
var ErrMalformed = errors.New("malformed SHA256SUMS")

// maxEntries bounds what Parse accepts.
const maxEntries = 10000

// Entry is one line: a file name and its SHA-256.
type Entry struct {
	Name string
	Sum  [sha256.Size]byte
}

// ValidName accepts a bare file name: no directory part, not absolute,
// not "." or "..", no control characters or backslashes.
func ValidName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q is not a file name", name)
	case strings.ContainsAny(name, `/\:`):
		return fmt.Errorf("%q has a directory part; only bare file names are allowed", name)
	case strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return fmt.Errorf("%q has a control character", name)
	}
	return nil
}

// Format returns the file listing entries, sorted by name.
func Format(entries []Entry) ([]byte, error) {
	es := slices.Clone(entries)
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	var b bytes.Buffer
	for i, e := range es {
		if err := ValidName(e.Name); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if i > 0 && es[i-1].Name == e.Name {
			return nil, fmt.Errorf("%w: %s listed twice", ErrMalformed, e.Name)
		}
		fmt.Fprintf(&b, "%x  %s\n", e.Sum, e.Name)
	}
	return b.Bytes(), nil
}

// Parse reads a SHA256SUMS file strictly: every line must be an entry
// with a valid name, each name at most once.
func Parse(b []byte) ([]Entry, error) {
	text := string(b)
	if text == "" {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("%w: no newline at the end (truncated?)", ErrMalformed)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) > maxEntries {
		return nil, fmt.Errorf("%w: more than %d lines", ErrMalformed, maxEntries)
	}
	seen := map[string]bool{}
	entries := make([]Entry, 0, len(lines))
	for i, line := range lines {
		e, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrMalformed, i+1, err)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("%w: line %d: %s listed twice", ErrMalformed, i+1, e.Name)
		}
		seen[e.Name] = true
		entries = append(entries, e)
	}
	return entries, nil
}

func parseLine(line string) (Entry, error) {
	const hexLen = 2 * sha256.Size
	if len(line) < hexLen+3 || line[hexLen] != ' ' || (line[hexLen+1] != ' ' && line[hexLen+1] != '*') {
		return Entry{}, errors.New(`want "<64 hex digits>  <file name>"`)
	}
	var e Entry
	if _, err := hex.Decode(e.Sum[:], []byte(line[:hexLen])); err != nil {
		return Entry{}, fmt.Errorf("checksum: %w", err)
	}
	e.Name = line[hexLen+2:]
	if err := ValidName(e.Name); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// File returns the SHA-256 of the file at path.
func File(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, fmt.Errorf("checksum: %w", err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("checksum %s: %w", path, err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
