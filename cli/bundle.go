package cli

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/ca"
)

// The FANGS-compatible tls/ layout: the root as ca.crt plus one server and
// one runner key pair.
const (
	bundleCA     = "ca.crt"
	bundleServer = "server"
	bundleRunner = "runner"
)

func (r *runtime) bundleCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "bundle",
		Usage: "write a FANGS-compatible tls/ directory: ca.crt, server.crt/.key, runner.crt/.key",
		Description: "Creates whatever is missing and keeps what is there. --rotate server (or runner)\n" +
			"re-issues that one leaf and touches nothing else: not the CA, not the other leaf.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "out", Usage: "bundle directory", Value: "tls"},
			&ucli.StringFlag{Name: "server-hosts", Usage: "server SANs, comma-separated DNS names and IPs", EnvVars: []string{"SERVER_HOSTS"}},
			&ucli.StringFlag{Name: "runner-name", Usage: "runner id in runner.crt", Value: "runner"},
			&ucli.StringFlag{Name: "rotate", Usage: "re-issue this leaf: server or runner"},
			jsonFlag(),
		},
		Action: r.certBundle,
	}
}

type bundleLeaf struct {
	name, profile string
	action        string // created, kept, rotated
	serial        string
}

func (r *runtime) certBundle(c *ucli.Context) error {
	if c.Args().Present() {
		return usageError{fmt.Errorf("unexpected arguments %q", c.Args().Slice())}
	}
	dir := c.String("out")
	rotate := c.String("rotate")
	if rotate != "" && rotate != bundleServer && rotate != bundleRunner {
		return usageError{fmt.Errorf("--rotate %q: use server or runner", rotate)}
	}
	hosts := strings.FieldsFunc(c.String("server-hosts"), func(r rune) bool { return r == ',' || r == ' ' })
	info, err := ca.ReadInfo(caDir(c))
	if err != nil {
		return withDataDirHint(err)
	}
	caPath := filepath.Join(dir, bundleCA)
	rootPEM := ca.EncodeCerts(info.Root)
	writeCA := true
	if b, err := os.ReadFile(caPath); err == nil {
		if !bytes.Equal(b, rootPEM) {
			return fmt.Errorf("%s holds another CA's root; this bundle belongs to a different CA (use another --out)", caPath)
		}
		writeCA = false
	}

	leaves := []*bundleLeaf{{name: bundleServer, profile: ca.ProfileServer}, {name: bundleRunner, profile: ca.ProfileRunner}}
	var toIssue []*bundleLeaf
	for _, l := range leaves {
		crt, key := filepath.Join(dir, l.name+".crt"), filepath.Join(dir, l.name+".key")
		_, errC := os.Stat(crt)
		_, errK := os.Stat(key)
		haveC, haveK := errC == nil, errK == nil
		switch {
		case rotate == l.name:
			l.action = "rotated"
			if !haveC && !haveK {
				l.action = "created"
			}
			toIssue = append(toIssue, l)
		case haveC && haveK:
			serial, err := checkBundlePair(crt, key, info.Intermediate)
			if err != nil {
				return fmt.Errorf("%w; fix it with --rotate %s", err, l.name)
			}
			l.action, l.serial = "kept", serial
		case haveC != haveK:
			return fmt.Errorf("%s has only half of the %s pair; re-issue it with --rotate %s", dir, l.name, l.name)
		default:
			l.action = "created"
			toIssue = append(toIssue, l)
		}
	}
	for _, l := range toIssue {
		if l.profile == ca.ProfileServer && len(hosts) == 0 {
			return usageError{errors.New("the server certificate needs host names: --server-hosts or SERVER_HOSTS (e.g. gateway.example.com,10.0.0.5)")}
		}
	}

	var files []outFile
	if len(toIssue) > 0 {
		a, closeCA, err := r.openCA(c)
		if err != nil {
			return err
		}
		defer closeCA()
		for _, l := range toIssue {
			key, csr, err := newKeyAndCSR(string(ca.KeyECP256))
			if err != nil {
				return err
			}
			req := ca.IssueRequest{Profile: l.profile, CSR: csr}
			if l.profile == ca.ProfileServer {
				req.Hosts = hosts
			} else {
				req.Name = c.String("runner-name")
			}
			iss, err := a.Issue(ctx(c), req)
			if err != nil {
				return fmt.Errorf("%s certificate: %w", l.name, err)
			}
			kb, err := ca.MarshalPrivateKey(key, nil)
			if err != nil {
				return err
			}
			l.serial = iss.Leaf.SerialNumber.String()
			files = append(files,
				outFile{filepath.Join(dir, l.name+".key"), kb, 0o600},
				outFile{filepath.Join(dir, l.name+".crt"), iss.ChainPEM(), 0o644})
		}
	}
	if writeCA {
		files = append([]outFile{{caPath, rootPEM, 0o644}}, files...)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := writeFiles(files); err != nil {
		return err
	}
	if wantJSON(c) {
		out := map[string]any{"dir": dir, "ca": map[bool]string{true: "created", false: "kept"}[writeCA]}
		for _, l := range leaves {
			out[l.name] = map[string]string{"action": l.action, "serial": l.serial}
		}
		return printJSON(c, out)
	}
	w := r.out(c)
	fmt.Fprintf(w, "%s\t%s\n", caPath, map[bool]string{true: "created", false: "kept"}[writeCA])
	for _, l := range leaves {
		fmt.Fprintf(w, "%s\t%s (serial %s)\n", filepath.Join(dir, l.name+".crt"), l.action, l.serial)
	}
	return w.Flush()
}

// checkBundlePair verifies an existing pair: the key matches, the key file
// is private and the certificate was issued by this CA.
func checkBundlePair(crtPath, keyPath string, inter *x509.Certificate) (string, error) {
	cert, err := ca.ReadCertFile(crtPath)
	if err != nil {
		return "", err
	}
	if err := cert.CheckSignatureFrom(inter); err != nil {
		return "", fmt.Errorf("%s was not issued by this CA", crtPath)
	}
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", keyPath, err)
	}
	if st, err := os.Stat(keyPath); err == nil && st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %04o; keys must be 0600 (chmod 600 %s)", keyPath, st.Mode().Perm(), keyPath)
	}
	key, err := ca.ParsePrivateKey(keyPath, kb, nil)
	if err != nil {
		return "", err
	}
	var signer crypto.Signer = key
	if !ca.PublicKeyMatches(signer, cert.PublicKey) {
		return "", fmt.Errorf("%s does not belong to %s", keyPath, crtPath)
	}
	return cert.SerialNumber.String(), nil
}
