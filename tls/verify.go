package leashtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// verifier holds the mTLS policy that crypto/tls does not apply by itself.
// Its verifyConnection is installed as Config.VerifyConnection, which
// crypto/tls calls on every handshake that passed its own checks: fresh
// ones after chain verification, and resumed ones with the certificates
// and verified chains recorded in the session ticket, without asking the
// client for a certificate again.
//
// crypto/tls calls it before it checks the client's CertificateVerify
// signature, so nothing here may act on the identity as if it were proven:
// the checks only refuse, and a handshake they pass still fails if the
// signature is bad. A refusal may therefore name a certificate the client
// merely copied.
type verifier struct {
	now        func() time.Time
	roles      []Role
	revocation RevocationChecker
	timeout    time.Duration
	onReject   func(Reason, error)
}

func (v *verifier) verifyConnection(cs tls.ConnectionState) error {
	err := v.check(cs)
	if err == nil {
		return nil
	}
	if cs.DidResume {
		err = fmt.Errorf("resumed session: %w", err)
	}
	if v.onReject != nil {
		v.onReject(FailureReason(err), err)
	}
	return err
}

func (v *verifier) check(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrNoClientCert
	}
	leaf := cs.PeerCertificates[0]
	// Chain verification is crypto/tls's job (RequireAndVerifyClientCert).
	// If someone lowered ClientAuth on the returned config, there is no
	// verified chain and nothing below could be trusted.
	if len(cs.VerifiedChains) == 0 {
		return fmt.Errorf("%w (subject %q)", ErrNotVerified, leaf.Subject)
	}

	// A resumed session carries the certificates of the handshake that
	// created it, which may be older than the certificate's lifetime.
	now := v.now()
	if !slices.ContainsFunc(cs.VerifiedChains, func(chain []*x509.Certificate) bool {
		return chainValidAt(chain, now)
	}) {
		return fmt.Errorf("%w: serial %s valid from %s until %s, now is %s", ErrExpired,
			leaf.SerialNumber, leaf.NotBefore.UTC().Format(time.RFC3339),
			leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}

	// Stricter than x509 verification, which accepts a leaf without any
	// extended key usage or with anyExtendedKeyUsage: Leash client
	// certificates always name clientAuth.
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return fmt.Errorf("%w: serial %s lacks the clientAuth extended key usage", ErrBadUsage, leaf.SerialNumber)
	}
	if leaf.IsCA {
		return fmt.Errorf("%w: serial %s is a CA certificate", ErrBadUsage, leaf.SerialNumber)
	}

	id, err := IdentityFromCert(leaf)
	if err != nil {
		return fmt.Errorf("%w: serial %s: %w", ErrInvalidIdentity, leaf.SerialNumber, err)
	}
	if len(v.roles) > 0 && !slices.Contains(v.roles, id.Role) {
		return fmt.Errorf("%w: %s may not connect here (allowed roles: %v)", ErrRoleDenied, id, v.roles)
	}

	ctx, cancel := context.WithTimeout(context.Background(), v.timeout)
	defer cancel()
	revoked, err := v.revocation.IsRevoked(ctx, id.Serial)
	if err != nil {
		return fmt.Errorf("%w: %s serial %s: %w", ErrRevocationUnavailable, id, id.Serial, err)
	}
	if revoked {
		return fmt.Errorf("%w: %s serial %s", ErrRevoked, id, id.Serial)
	}
	return nil
}

func chainValidAt(chain []*x509.Certificate, now time.Time) bool {
	if len(chain) == 0 {
		return false
	}
	for _, c := range chain {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return false
		}
	}
	return true
}

// PeerIdentity returns the identity of the verified client certificate of
// a connection, for example from http.Request.TLS. It reads the leaf of
// the first verified chain and so refuses a connection whose certificate
// was not verified.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		if len(cs.PeerCertificates) == 0 {
			return Identity{}, ErrNoClientCert
		}
		return Identity{}, ErrNotVerified
	}
	id, err := IdentityFromCert(cs.VerifiedChains[0][0])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidIdentity, err)
	}
	return id, nil
}
