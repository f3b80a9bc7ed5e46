package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/errs"
)

// directTokenTTL is the life of the internal token Issue mints and spends
// at once.
const directTokenTTL = 5 * time.Minute

// Enroll spends a one-time token on a CSR and returns the signed chain.
// The CSR contributes only its public key: subject, SANs, usage and
// lifetime come from the token's profile. A CSR that asks for more (other
// SANs, another name, CA rights, other EKUs) is refused before the token is
// spent, so a bad request does not burn it.
func (a *Authority) Enroll(ctx context.Context, token string, csr *x509.CertificateRequest) (*Issued, error) {
	claims, p, err := a.verifyToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if !p.Client() {
		return nil, fmt.Errorf("%w: token profile %q cannot be used to enroll", ErrPolicy, p.Name)
	}
	return a.sign(ctx, token, claims, p, csr, 0)
}

// IssueRequest asks for a certificate signed directly, without a token
// handed out: the operator driving the CLI holds the CA password.
type IssueRequest struct {
	Profile  string
	Name     string   // client name / runner id; for server certs the CN (default: first host)
	Hosts    []string // server SANs: DNS names and IP literals
	CSR      *x509.CertificateRequest
	Lifetime time.Duration // 0 = profile default
}

// Issue signs req.CSR under req.Profile.
func (a *Authority) Issue(ctx context.Context, req IssueRequest) (*Issued, error) {
	p, err := a.Profile(req.Profile)
	if err != nil {
		return nil, err
	}
	if req.CSR == nil {
		return nil, errors.New("issue: no certificate request")
	}
	if err := a.checkLifetime(p, req.Lifetime); err != nil {
		return nil, err
	}
	tok, err := a.mintToken(ctx, TokenDirect, p, req.Name, req.Hosts, directTokenTTL)
	if err != nil {
		return nil, err
	}
	claims, _, err := a.verifyToken(ctx, tok.Value)
	if err != nil {
		return nil, err
	}
	return a.sign(ctx, tok.Value, claims, p, req.CSR, req.Lifetime)
}

func (a *Authority) checkLifetime(p Profile, d time.Duration) error {
	if d == 0 {
		return nil
	}
	if d < time.Duration(p.Lifetimes.Min) || d > time.Duration(p.Lifetimes.Max) {
		return fmt.Errorf("%w: lifetime %s is outside the %s profile's limits [%s, %s]", ErrPolicy, d, p.Name,
			time.Duration(p.Lifetimes.Min), time.Duration(p.Lifetimes.Max))
	}
	return nil
}

func (a *Authority) sign(ctx context.Context, token string, claims tokenClaims, p Profile,
	csr *x509.CertificateRequest, lifetime time.Duration) (*Issued, error) {
	if err := checkCSR(p, claims, csr); err != nil {
		return nil, err
	}
	sctx := provisioner.NewContextWithMethod(ctx, provisioner.SignMethod)
	opts, err := a.step.Authorize(sctx, token)
	if err != nil {
		// Lost a race for the token: report it as such.
		if rec, rerr := a.store.Token(ctx, claims.ID); rerr == nil && !rec.UsedAt.IsZero() {
			return nil, fmt.Errorf("%w: token %s was spent by a concurrent request", ErrTokenUsed, claims.ID)
		}
		return nil, fmt.Errorf("%w: %s", ErrTokenInvalid, stepMessage(err))
	}
	var so provisioner.SignOptions
	if lifetime > 0 {
		so.NotAfter.SetDuration(lifetime)
	}
	chain, err := a.step.SignWithContext(sctx, csr, so, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrPolicy, stepMessage(err))
	}
	leaf := chain[0]
	if err := a.store.SetTokenCertificate(ctx, claims.ID, leaf.SerialNumber.String()); err != nil {
		a.log.Warn("link token to certificate", "token", claims.ID, "serial", leaf.SerialNumber.String(), "err", err)
	}
	a.log.Info("certificate issued", "profile", p.Name, "subject", leaf.Subject.CommonName,
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC())
	return &Issued{Leaf: leaf, Chain: chain, Profile: p.Name}, nil
}

// stepMessage extracts the human part of a step error.
func stepMessage(err error) string {
	var se *errs.Error
	if errors.As(err, &se) && se.Msg != "" {
		return se.Msg + ": " + se.Err.Error()
	}
	return err.Error()
}

var (
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidEKUServerAuth    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	oidEKUClientAuth    = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}
)

// checkCSR refuses requests that ask for more than the token allows. Step's
// template would drop most of it; refusing says clearly what was wrong.
func checkCSR(p Profile, c tokenClaims, csr *x509.CertificateRequest) error {
	if csr == nil {
		return fmt.Errorf("%w: no certificate request", ErrPolicy)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("%w: certificate request signature invalid: %v", ErrPolicy, err)
	}
	if err := CheckPublicKey(csr.PublicKey); err != nil {
		return err
	}
	var problems []string
	if cn := csr.Subject.CommonName; cn != "" && cn != c.Subject {
		problems = append(problems, fmt.Sprintf("common name %q (the token is for %q)", cn, c.Subject))
	}
	var asked []string
	asked = append(asked, csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		asked = append(asked, ip.String())
	}
	for _, u := range csr.URIs {
		asked = append(asked, u.String())
	}
	if len(csr.EmailAddresses) > 0 {
		problems = append(problems, fmt.Sprintf("e-mail SANs %v", csr.EmailAddresses))
	}
	if len(asked) > 0 {
		want := slices.Clone(c.SANs)
		sort.Strings(want)
		got := slices.Clone(asked)
		sort.Strings(got)
		if !slices.Equal(slices.Compact(got), slices.Compact(want)) {
			problems = append(problems, fmt.Sprintf("SANs %v (the token allows %v)", asked, c.SANs))
		}
	}
	for _, ext := range csr.Extensions {
		switch {
		case ext.Id.Equal(oidBasicConstraints):
			var bc struct {
				IsCA bool `asn1:"optional"`
				Max  int  `asn1:"optional,default:-1"`
			}
			if _, err := asn1.Unmarshal(ext.Value, &bc); err != nil || bc.IsCA {
				problems = append(problems, "CA rights (basicConstraints CA:TRUE)")
			}
		case ext.Id.Equal(oidExtKeyUsage):
			var ekus []asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(ext.Value, &ekus); err != nil {
				problems = append(problems, "an unreadable extended key usage")
				continue
			}
			allowed := oidEKUClientAuth
			if p.EKU == x509.ExtKeyUsageServerAuth {
				allowed = oidEKUServerAuth
			}
			for _, e := range ekus {
				if !e.Equal(allowed) {
					problems = append(problems, fmt.Sprintf("extended key usage %s (the %s profile allows only %s)", e, p.Name, allowed))
				}
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: the request asks for %s", ErrPolicy, joinAnd(problems))
	}
	return nil
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := ""
	for i, v := range s {
		switch {
		case i == 0:
			out = v
		case i == len(s)-1:
			out += " and " + v
		default:
			out += ", " + v
		}
	}
	return out
}

// Renew signs a new certificate with the same subject, SANs, profile and
// lifetime as cert, for the same key (newKey nil) or a new one (rekey). The
// old certificate stays valid until it expires. Revoked, expired and
// foreign certificates are refused.
func (a *Authority) Renew(ctx context.Context, cert *x509.Certificate, newKey crypto.PublicKey) (*Issued, error) {
	if err := cert.CheckSignatureFrom(a.inter); err != nil {
		return nil, fmt.Errorf("%w: it was not issued by this CA's intermediate", ErrRenewal)
	}
	serial := cert.SerialNumber.String()
	rec, err := a.store.Certificate(ctx, serial)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: serial %s is not in this CA's inventory", ErrRenewal, serial)
	}
	if err != nil {
		return nil, fmt.Errorf("look up certificate: %w", err)
	}
	if rec.Revoked() {
		return nil, fmt.Errorf("%w: serial %s was revoked at %s", ErrRenewal, serial, rec.RevokedAt.Format(time.RFC3339))
	}
	if now := a.clock(); !now.Before(cert.NotAfter) {
		return nil, fmt.Errorf("%w: serial %s expired at %s; enroll again with a new token", ErrRenewal, serial, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if newKey != nil {
		if err := CheckPublicKey(newKey); err != nil {
			return nil, err
		}
	}
	chain, err := a.step.RenewContext(provisioner.NewContextWithMethod(ctx, provisioner.RenewMethod), cert, newKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrRenewal, stepMessage(err))
	}
	a.log.Info("certificate renewed", "profile", rec.Profile, "subject", rec.Subject, "old_serial", serial,
		"serial", chain[0].SerialNumber.String(), "rekey", newKey != nil)
	return &Issued{Leaf: chain[0], Chain: chain, Profile: rec.Profile}, nil
}
