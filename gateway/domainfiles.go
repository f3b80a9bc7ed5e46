package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/leashpki/leash/protocol"
)

// domainFile is one file of the domains directory (GitOps): YAML or JSON
// with the same fields as the API's Domain.
type domainFile struct {
	Name   string         `yaml:"name"`
	Runner string         `yaml:"runner"`
	Policy map[string]any `yaml:"policy"`
}

// fileSource marks domains that a file of the directory manages.
const fileSource = "file:"

// syncDomainFiles makes the stored domains match the directory: every
// valid file's domain is stored (when it changed), domains whose file is
// gone are removed, and a bad file is logged and skipped without touching
// the others. Domains made through the API are left alone.
func (s *Server) syncDomainFiles(ctx context.Context) error {
	dir := s.cfg.DomainsDir
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("domains dir: %w", err)
	}
	inFiles := map[string]bool{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		d, err := readDomainFile(path)
		if err != nil {
			s.log.Error("domain file refused", "file", path, "err", err)
			continue
		}
		inFiles[d.Name] = true
		doc, _ := json.Marshal(d)
		if cur, err := s.st.Blob(ctx, domainPrefix+d.Name); err == nil {
			var stored protocol.Domain
			if json.Unmarshal(cur.Value, &stored) == nil && sameDomain(stored, d) {
				continue
			}
		}
		if _, err := s.putDomain(ctx, doc); err != nil {
			s.log.Error("domain file refused", "file", path, "err", err)
			continue
		}
		s.audit(ctx, "gateway", "domain.set", d.Name, "from "+path)
	}
	for _, d := range s.domains.list() {
		if strings.HasPrefix(d.Source, fileSource) && !inFiles[d.Name] {
			if err := s.st.DeleteBlob(ctx, domainPrefix+d.Name); err != nil {
				return err
			}
			s.audit(ctx, "gateway", "domain.remove", d.Name, "its file "+strings.TrimPrefix(d.Source, fileSource)+" is gone")
		}
	}
	return s.domains.reload(ctx)
}

func sameDomain(a, b protocol.Domain) bool {
	return a.Name == b.Name && a.Runner == b.Runner && a.Source == b.Source && jsonEqual(a.Policy, b.Policy)
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func readDomainFile(path string) (protocol.Domain, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return protocol.Domain{}, err
	}
	var f domainFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return protocol.Domain{}, err
	}
	if f.Name == "" {
		f.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	policy := json.RawMessage("{}")
	if f.Policy != nil {
		if policy, err = json.Marshal(f.Policy); err != nil {
			return protocol.Domain{}, err
		}
	}
	d := protocol.Domain{Name: f.Name, Runner: f.Runner, Policy: policy, Source: fileSource + path}
	if _, _, err := decodeDomain(mustJSON(d)); err != nil {
		return protocol.Domain{}, err
	}
	return d, nil
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }
