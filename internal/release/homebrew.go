package release

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/leashpki/leash/internal/release/sums"
)

// FormulaTemplate is the Homebrew formula template, in the module.
const FormulaTemplate = "deploy/homebrew/leash.rb.tmpl"

// FormulaName is the filled formula in the output directory.
const FormulaName = "leash.rb"

type formulaArchive struct{ URL, SHA256 string }

type formulaOS struct{ AMD64, ARM64 *formulaArchive }

type formulaData struct {
	Version, PlainVersion string
	Darwin, Linux         *formulaOS
}

// writeFormula fills the Homebrew formula with the URLs and SHA-256 of the
// darwin and linux archives already in OutDir. It writes nothing (and
// returns "") when the release has none of them.
func writeFormula(cfg Config) (string, error) {
	data := formulaData{Version: cfg.Version, PlainVersion: strings.TrimPrefix(cfg.Version, "v")}
	for _, t := range cfg.Targets {
		var osData **formulaOS
		switch t.OS {
		case "darwin":
			osData = &data.Darwin
		case "linux":
			osData = &data.Linux
		default:
			continue
		}
		name := archiveName(cfg.Version, t)
		sum, err := sums.File(filepath.Join(cfg.OutDir, name))
		if err != nil {
			return "", fmt.Errorf("release: formula: %w", err)
		}
		a := &formulaArchive{URL: strings.TrimRight(cfg.URLBase, "/") + "/" + name, SHA256: fmt.Sprintf("%x", sum)}
		if *osData == nil {
			*osData = &formulaOS{}
		}
		if t.Arch == "arm64" {
			(*osData).ARM64 = a
		} else {
			(*osData).AMD64 = a
		}
	}
	if data.Darwin == nil && data.Linux == nil {
		return "", nil
	}
	text, err := os.ReadFile(filepath.Join(cfg.ModuleDir, FormulaTemplate))
	if err != nil {
		return "", fmt.Errorf("release: formula: %w", err)
	}
	tmpl, err := template.New("formula").Option("missingkey=error").Parse(string(text))
	if err != nil {
		return "", fmt.Errorf("release: formula template: %w", err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, data); err != nil {
		return "", fmt.Errorf("release: formula template: %w", err)
	}
	if err := os.WriteFile(filepath.Join(cfg.OutDir, FormulaName), out.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("release: formula: %w", err)
	}
	fmt.Fprintf(cfg.Log, "wrote %s\n", FormulaName)
	return FormulaName, nil
}
