package cli

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	leashtls "github.com/leashpki/leash/tls"
)

func (r *runtime) inspectCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "inspect",
		Usage:     "describe a certificate (or chain), certificate request or CRL file, PEM or DER; needs no CA",
		ArgsUsage: "FILE",
		Flags:     []ucli.Flag{jsonFlag()},
		Action:    r.certInspect,
	}
}

// objectJSON describes one parsed object.
type objectJSON struct {
	Kind         string    `json:"kind"` // certificate, certificate-request, crl
	Subject      string    `json:"subject,omitempty"`
	Issuer       string    `json:"issuer,omitempty"`
	Serial       string    `json:"serial,omitempty"`
	SerialHex    string    `json:"serial_hex,omitempty"`
	SANs         []string  `json:"sans,omitempty"`
	Identity     string    `json:"identity,omitempty"`
	IsCA         bool      `json:"is_ca,omitempty"`
	KeyUsage     []string  `json:"key_usage,omitempty"`
	ExtKeyUsage  []string  `json:"ext_key_usage,omitempty"`
	PublicKey    string    `json:"public_key,omitempty"`
	NotBefore    time.Time `json:"not_before,omitzero"`
	NotAfter     time.Time `json:"not_after,omitzero"`
	Expired      bool      `json:"expired,omitempty"`
	Fingerprint  string    `json:"sha256_fingerprint,omitempty"`
	CRLNumber    string    `json:"crl_number,omitempty"`
	ThisUpdate   time.Time `json:"this_update,omitzero"`
	NextUpdate   time.Time `json:"next_update,omitzero"`
	RevokedCount int       `json:"revoked_count,omitempty"`
	Revoked      []string  `json:"revoked_serials,omitempty"`
}

func (r *runtime) certInspect(c *ucli.Context) error {
	pos, err := args(c)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{fmt.Errorf("inspect takes exactly one FILE, got %d arguments", len(pos))}
	}
	path := pos[0]
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	objs, err := parseObjects(data, time.Now())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if wantJSON(c) {
		return printJSON(c, objs)
	}
	w := r.out(c)
	for i, o := range objs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		printObject(w, o)
	}
	return w.Flush()
}

// parseObjects reads every PEM block in data, or data as one DER object.
// Private keys are refused: inspect never prints key material.
func parseObjects(data []byte, now time.Time) ([]objectJSON, error) {
	var out []objectJSON
	rest := data
	sawPEM := false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		sawPEM = true
		var (
			o   objectJSON
			err error
		)
		switch block.Type {
		case "CERTIFICATE":
			o, err = describeCert(block.Bytes, now)
		case "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST":
			o, err = describeCSR(block.Bytes)
		case "X509 CRL":
			o, err = describeCRL(block.Bytes)
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("this is a private key (%s); inspect shows certificates, requests and CRLs only", block.Type)
			}
			return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	if sawPEM {
		return out, nil
	}
	if len(data) == 0 {
		return nil, errors.New("file is empty")
	}
	// Not PEM: try DER of each kind.
	if o, err := describeCert(data, now); err == nil {
		return []objectJSON{o}, nil
	}
	if o, err := describeCSR(data); err == nil {
		return []objectJSON{o}, nil
	}
	if o, err := describeCRL(data); err == nil {
		return []objectJSON{o}, nil
	}
	return nil, errors.New("neither PEM nor a DER certificate, certificate request or CRL")
}

func describeCert(der []byte, now time.Time) (objectJSON, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return objectJSON{}, fmt.Errorf("malformed certificate: %w", err)
	}
	sum := sha256.Sum256(cert.Raw)
	o := objectJSON{
		Kind: "certificate", Subject: cert.Subject.String(), Issuer: cert.Issuer.String(),
		Serial: cert.SerialNumber.String(), SerialHex: colonHex(cert.SerialNumber.Bytes()),
		SANs: sanList(cert), IsCA: cert.IsCA, KeyUsage: keyUsages(cert.KeyUsage), ExtKeyUsage: extKeyUsages(cert),
		PublicKey: cert.PublicKeyAlgorithm.String(), NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(),
		Expired: !now.Before(cert.NotAfter), Fingerprint: hex.EncodeToString(sum[:]),
	}
	if id, err := leashtls.IdentityFromCert(cert); err == nil {
		o.Identity = id.String()
	}
	return o, nil
}

func describeCSR(der []byte) (objectJSON, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return objectJSON{}, fmt.Errorf("malformed certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return objectJSON{}, fmt.Errorf("certificate request signature invalid: %w", err)
	}
	var sans []string
	sans = append(sans, csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		sans = append(sans, ip.String())
	}
	for _, u := range csr.URIs {
		sans = append(sans, u.String())
	}
	sans = append(sans, csr.EmailAddresses...)
	return objectJSON{Kind: "certificate-request", Subject: csr.Subject.String(), SANs: sans,
		PublicKey: csr.PublicKeyAlgorithm.String()}, nil
}

func describeCRL(der []byte) (objectJSON, error) {
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return objectJSON{}, fmt.Errorf("malformed CRL: %w", err)
	}
	o := objectJSON{Kind: "crl", Issuer: crl.Issuer.String(), ThisUpdate: crl.ThisUpdate.UTC(),
		NextUpdate: crl.NextUpdate.UTC(), RevokedCount: len(crl.RevokedCertificateEntries)}
	if crl.Number != nil {
		o.CRLNumber = crl.Number.String()
	}
	for _, e := range crl.RevokedCertificateEntries {
		o.Revoked = append(o.Revoked, e.SerialNumber.String())
	}
	return o, nil
}

func printObject(w interface{ Write([]byte) (int, error) }, o objectJSON) {
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	t := func(v time.Time) string {
		if v.IsZero() {
			return ""
		}
		return v.Format(time.RFC3339)
	}
	line("kind", o.Kind)
	line("subject", o.Subject)
	line("issuer", o.Issuer)
	if o.Serial != "" {
		line("serial", o.Serial+" ("+o.SerialHex+")")
	}
	line("identity", o.Identity)
	line("SANs", strings.Join(o.SANs, ", "))
	if o.Kind == "certificate" {
		line("CA", fmt.Sprint(o.IsCA))
	}
	line("key usage", strings.Join(o.KeyUsage, ", "))
	line("extended key usage", strings.Join(o.ExtKeyUsage, ", "))
	line("public key", o.PublicKey)
	line("not before", t(o.NotBefore))
	line("not after", t(o.NotAfter))
	if o.Expired {
		line("status", "EXPIRED")
	}
	line("SHA-256", o.Fingerprint)
	line("CRL number", o.CRLNumber)
	line("this update", t(o.ThisUpdate))
	line("next update", t(o.NextUpdate))
	if o.Kind == "crl" {
		line("revoked", fmt.Sprintf("%d %v", o.RevokedCount, o.Revoked))
	}
}

func sanList(c *x509.Certificate) []string {
	var s []string
	s = append(s, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		s = append(s, ip.String())
	}
	for _, u := range c.URIs {
		s = append(s, u.String())
	}
	return append(s, c.EmailAddresses...)
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, v := range b {
		parts[i] = fmt.Sprintf("%02x", v)
	}
	return strings.Join(parts, ":")
}

func keyUsages(ku x509.KeyUsage) []string {
	names := []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment",
		"keyAgreement", "certSign", "crlSign", "encipherOnly", "decipherOnly"}
	var out []string
	for i, n := range names {
		if ku&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func extKeyUsages(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			out = append(out, "serverAuth")
		case x509.ExtKeyUsageClientAuth:
			out = append(out, "clientAuth")
		case x509.ExtKeyUsageAny:
			out = append(out, "any")
		default:
			out = append(out, fmt.Sprintf("eku-%d", u))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		out = append(out, oid.String())
	}
	return out
}
