package cli

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/ca"
	leashtls "github.com/leashpki/leash/tls"
)

func (r *runtime) certCommand() *ucli.Command {
	outFlags := func(defCert, defKey string) []ucli.Flag {
		return []ucli.Flag{
			&ucli.StringFlag{Name: "csr", Usage: "sign this PEM/DER certificate request instead of generating a key"},
			&ucli.StringFlag{Name: "key-type", Usage: fmt.Sprintf("type of the generated key: %v", ca.KeyTypes()), Value: string(ca.KeyECP256)},
			&ucli.StringFlag{Name: "cert-file", Usage: "where to write the certificate chain (leaf + intermediate)", Value: defCert},
			&ucli.StringFlag{Name: "key-file", Usage: "where to write the generated private key (mode 0600)", Value: defKey},
			&ucli.DurationFlag{Name: "lifetime", Usage: "certificate lifetime (0 = the profile's default)"},
			&ucli.BoolFlag{Name: "force", Usage: "replace existing output files"},
			jsonFlag(),
		}
	}
	return &ucli.Command{
		Name:  "cert",
		Usage: "issue, renew, revoke, list and inspect certificates",
		Subcommands: []*ucli.Command{
			{
				Name:  "issue",
				Usage: "issue a certificate directly (needs the CA password)",
				Subcommands: []*ucli.Command{
					{
						Name:  "server",
						Usage: "issue a server certificate (EKU serverAuth) for a list of host names and IPs",
						Flags: append([]ucli.Flag{
							&ucli.StringSliceFlag{Name: "hosts", Usage: "DNS names and IP literals (comma-separated or repeated)", Required: true},
							&ucli.StringFlag{Name: "name", Usage: "subject common name (default: the first host)"},
						}, outFlags("server.crt", "server.key")...),
						Action: func(c *ucli.Context) error { return r.certIssue(c, ca.ProfileServer) },
					},
					{
						Name:  "client",
						Usage: "issue a client certificate (EKU clientAuth) with identity leash://<role>/<name>",
						Flags: append([]ucli.Flag{
							&ucli.StringFlag{Name: "role", Usage: fmt.Sprintf("client role: %v", leashtls.Roles()), Required: true},
							&ucli.StringFlag{Name: "name", Usage: "runner id or client name", Required: true},
						}, outFlags("", "")...),
						Action: func(c *ucli.Context) error {
							profile, err := ca.ProfileForRole(leashtls.Role(c.String("role")))
							if err != nil {
								return usageError{err}
							}
							return r.certIssue(c, profile)
						},
					},
				},
			},
			{
				Name:      "renew",
				Usage:     "renew a certificate for the same identity (same key, or a new one with --rekey)",
				ArgsUsage: " ",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "cert", Usage: "the certificate file to renew; replaced in place unless --out-cert", Required: true},
					&ucli.StringFlag{Name: "key", Usage: "its private key file; replaced by a new key with --rekey"},
					&ucli.BoolFlag{Name: "rekey", Usage: "generate a new key pair (written to --key)"},
					&ucli.StringFlag{Name: "key-type", Usage: "type of the new key with --rekey", Value: string(ca.KeyECP256)},
					&ucli.StringFlag{Name: "out-cert", Usage: "write the renewed chain here instead of over --cert"},
					jsonFlag(),
				},
				Action: r.certRenew,
			},
			{
				Name:      "revoke",
				Usage:     "revoke a certificate by serial (decimal, 0x-hex or colon hex) or by --cert file",
				ArgsUsage: "[SERIAL]",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "cert", Usage: "revoke the certificate in this file"},
					&ucli.StringFlag{Name: "reason", Usage: fmt.Sprintf("RFC 5280 reason: %s", strings.Join(ca.ReasonNames(), ", ")), Value: "unspecified"},
					&ucli.StringFlag{Name: "message", Usage: "free-text note kept with the revocation"},
					jsonFlag(),
				},
				Action: r.certRevoke,
			},
			{
				Name:  "list",
				Usage: "list issued certificates: serial, subject, role, not-after, status",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "profile", Usage: fmt.Sprintf("only this profile: %v", ca.ProfileNames())},
					&ucli.StringFlag{Name: "subject", Usage: "only this subject"},
					&ucli.StringFlag{Name: "status", Usage: "only this status: valid, expiring, expired, revoked"},
					&ucli.IntFlag{Name: "limit", Usage: "at most this many (0 = all)"},
					jsonFlag(),
				},
				Action: r.certList,
			},
			r.inspectCommand(),
			r.bundleCommand(),
		},
	}
}

// issuedJSON is the --json output of issue and renew.
type issuedJSON struct {
	Serial    string    `json:"serial"`
	Subject   string    `json:"subject"`
	Profile   string    `json:"profile"`
	SANs      []string  `json:"sans"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	CertFile  string    `json:"cert_file"`
	KeyFile   string    `json:"key_file,omitempty"`
}

func issuedInfo(iss *ca.Issued, certFile, keyFile string) issuedJSON {
	l := iss.Leaf
	return issuedJSON{Serial: l.SerialNumber.String(), Subject: l.Subject.CommonName, Profile: iss.Profile,
		SANs: sanList(l), NotBefore: l.NotBefore.UTC(), NotAfter: l.NotAfter.UTC(), CertFile: certFile, KeyFile: keyFile}
}

func (r *runtime) certIssue(c *ucli.Context, profile string) error {
	if c.Args().Present() {
		return usageError{fmt.Errorf("unexpected arguments %q", c.Args().Slice())}
	}
	name := c.String("name")
	certFile, keyFile := c.String("cert-file"), c.String("key-file")
	if certFile == "" {
		certFile = name + ".crt"
	}
	if keyFile == "" {
		keyFile = name + ".key"
	}
	var hosts []string
	for _, h := range c.StringSlice("hosts") {
		for _, part := range strings.Split(h, ",") {
			if part = strings.TrimSpace(part); part != "" {
				hosts = append(hosts, part)
			}
		}
	}
	var (
		csr *x509.CertificateRequest
		key crypto.Signer
		err error
	)
	if p := c.String("csr"); p != "" {
		if c.IsSet("key-file") || c.IsSet("key-type") {
			return usageError{errors.New("--csr brings its own key: drop --key-file/--key-type")}
		}
		keyFile = ""
		if csr, err = readCSR(p); err != nil {
			return err
		}
	} else {
		if key, csr, err = newKeyAndCSR(c.String("key-type")); err != nil {
			return err
		}
	}
	paths := []string{certFile}
	if keyFile != "" {
		paths = append(paths, keyFile)
	}
	if err := refuseOverwrite(c.Bool("force"), paths...); err != nil {
		return err
	}
	a, closeCA, err := r.openCA(c)
	if err != nil {
		return err
	}
	defer closeCA()
	iss, err := a.Issue(ctx(c), ca.IssueRequest{Profile: profile, Name: name, Hosts: hosts, CSR: csr, Lifetime: c.Duration("lifetime")})
	if err != nil {
		return err
	}
	files := []outFile{}
	if key != nil {
		kb, err := ca.MarshalPrivateKey(key, nil)
		if err != nil {
			return err
		}
		files = append(files, outFile{keyFile, kb, 0o600})
	}
	files = append(files, outFile{certFile, iss.ChainPEM(), 0o644})
	if err := writeFiles(files); err != nil {
		return fmt.Errorf("certificate %s was issued but could not be saved (revoke it with: leash cert revoke %s): %w",
			iss.Leaf.SerialNumber, iss.Leaf.SerialNumber, err)
	}
	return r.printIssued(c, "issued", iss, certFile, keyFile)
}

func (r *runtime) printIssued(c *ucli.Context, verb string, iss *ca.Issued, certFile, keyFile string) error {
	info := issuedInfo(iss, certFile, keyFile)
	if wantJSON(c) {
		return printJSON(c, info)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s %s certificate for %q, serial %s, valid until %s\n", verb, info.Profile, info.Subject,
		info.Serial, info.NotAfter.Format(time.RFC3339))
	fmt.Fprintf(w, "  certificate: %s\n", certFile)
	if keyFile != "" {
		fmt.Fprintf(w, "  key:         %s\n", keyFile)
	}
	return nil
}

func newKeyAndCSR(keyType string) (crypto.Signer, *x509.CertificateRequest, error) {
	kt, err := ca.ParseKeyType(keyType)
	if err != nil {
		return nil, nil, usageError{err}
	}
	key, err := kt.Generate()
	if err != nil {
		return nil, nil, err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return nil, nil, err
	}
	return key, csr, nil
}

func readCSR(path string) (*x509.CertificateRequest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate request: %w", err)
	}
	csr, err := ca.ParseCSR(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return csr, nil
}

func (r *runtime) certRenew(c *ucli.Context) error {
	if c.Args().Present() {
		return usageError{fmt.Errorf("unexpected arguments %q", c.Args().Slice())}
	}
	certPath, keyPath := c.String("cert"), c.String("key")
	if c.Bool("rekey") && keyPath == "" {
		return usageError{errors.New("--rekey needs --key: the file the new private key is written to")}
	}
	cert, err := ca.ReadCertFile(certPath)
	if err != nil {
		return err
	}
	var newKey crypto.Signer
	if keyPath != "" && !c.Bool("rekey") {
		// Renewing for the same key: make sure the pair on disk matches so the
		// operator does not end up with a certificate for a key they lack.
		kb, err := os.ReadFile(keyPath)
		if err != nil {
			return fmt.Errorf("read key: %w", err)
		}
		k, err := ca.ParsePrivateKey(keyPath, kb, nil)
		if err != nil {
			return err
		}
		if !ca.PublicKeyMatches(k, cert.PublicKey) {
			return fmt.Errorf("%s does not belong to %s", keyPath, certPath)
		}
	}
	if c.Bool("rekey") {
		kt, err := ca.ParseKeyType(c.String("key-type"))
		if err != nil {
			return usageError{err}
		}
		if newKey, err = kt.Generate(); err != nil {
			return err
		}
	}
	a, closeCA, err := r.openCA(c)
	if err != nil {
		return err
	}
	defer closeCA()
	var pub crypto.PublicKey
	if newKey != nil {
		pub = newKey.Public()
	}
	iss, err := a.Renew(ctx(c), cert, pub)
	if err != nil {
		return err
	}
	out := c.String("out-cert")
	if out == "" {
		out = certPath
	}
	var files []outFile
	writtenKey := ""
	if newKey != nil {
		kb, err := ca.MarshalPrivateKey(newKey, nil)
		if err != nil {
			return err
		}
		files = append(files, outFile{keyPath, kb, 0o600})
		writtenKey = keyPath
	}
	files = append(files, outFile{out, iss.ChainPEM(), 0o644})
	if err := writeFiles(files); err != nil {
		return fmt.Errorf("renewed certificate %s could not be saved: %w", iss.Leaf.SerialNumber, err)
	}
	verb := "renewed"
	if newKey != nil {
		verb = "re-keyed"
	}
	return r.printIssued(c, verb, iss, out, writtenKey)
}

func (r *runtime) certRevoke(c *ucli.Context) error {
	pos, err := args(c)
	if err != nil {
		return err
	}
	var raw string
	switch {
	case len(pos) > 1:
		return usageError{fmt.Errorf("revoke takes one serial, got %d arguments", len(pos))}
	case len(pos) == 1 && c.IsSet("cert"):
		return usageError{errors.New("give a serial or --cert, not both")}
	case len(pos) == 1:
		raw = pos[0]
	case c.IsSet("cert"):
		cert, err := ca.ReadCertFile(c.String("cert"))
		if err != nil {
			return err
		}
		raw = cert.SerialNumber.String()
	default:
		return usageError{errors.New("which certificate? give its SERIAL (see leash cert list) or --cert FILE")}
	}
	serial, err := ca.ParseSerial(raw)
	if err != nil {
		return usageError{err}
	}
	reason, err := ca.ParseReason(c.String("reason"))
	if err != nil {
		return usageError{err}
	}
	a, closeCA, err := r.openCA(c)
	if err != nil {
		return err
	}
	defer closeCA()
	rev, err := a.Revoke(ctx(c), serial, reason, c.String("message"))
	if err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, map[string]any{"serial": rev.Serial, "reason": reason.String(), "reason_code": rev.ReasonCode,
			"message": rev.Reason, "revoked_at": rev.RevokedAt})
	}
	fmt.Fprintf(c.App.Writer, "revoked serial %s (%s); the CRL was re-signed\n", rev.Serial, reason)
	return nil
}

type certRow struct {
	Serial    string    `json:"serial"`
	Subject   string    `json:"subject"`
	Role      string    `json:"role"`
	SANs      []string  `json:"sans"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Status    string    `json:"status"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	Reason    string    `json:"revocation_reason,omitempty"`
}

func (r *runtime) certList(c *ucli.Context) error {
	q := ca.InventoryQuery{Profile: c.String("profile"), Subject: c.String("subject"), Limit: c.Int("limit")}
	if q.Profile != "" {
		if _, err := ca.ParseProfileName(q.Profile); err != nil {
			return usageError{err}
		}
	}
	if s := c.String("status"); s != "" {
		st, err := ca.ParseStatus(s)
		if err != nil {
			return usageError{err}
		}
		q.Status = st
	}
	a, closeCA, err := r.openCA(c)
	if err != nil {
		return err
	}
	defer closeCA()
	infos, err := a.Certificates(ctx(c), q)
	if err != nil {
		return err
	}
	rows := make([]certRow, 0, len(infos))
	for _, i := range infos {
		row := certRow{Serial: i.Serial, Subject: i.Subject, Role: i.Profile, SANs: i.SANs,
			NotBefore: i.NotBefore, NotAfter: i.NotAfter, Status: string(i.Status)}
		if i.Revoked() {
			row.RevokedAt, row.Reason = i.RevokedAt, ca.Reason(i.ReasonCode).String()
		}
		rows = append(rows, row)
	}
	if wantJSON(c) {
		return printJSON(c, rows)
	}
	w := r.out(c)
	fmt.Fprintln(w, "SERIAL\tSUBJECT\tROLE\tNOT AFTER\tSTATUS")
	for _, row := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", row.Serial, row.Subject, row.Role, row.NotAfter.Format(time.RFC3339), row.Status)
	}
	return w.Flush()
}
