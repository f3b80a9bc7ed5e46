package leashtls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	leashtls "github.com/leashpki/leash/tls"
)

func TestFailureReason(t *testing.T) {
	remote := func(code uint8) error {
		// What a crypto/tls client returns for an alert from the server.
		return &net.OpError{Op: "remote error", Err: tls.AlertError(code)}
	}
	tests := []struct {
		name string
		err  error
		want leashtls.Reason
	}{
		{"nil", nil, ""},
		{"revoked", fmt.Errorf("resumed session: %w", fmt.Errorf("%w: x", leashtls.ErrRevoked)), leashtls.ReasonRevoked},
		{"revocation unavailable wrapping a timeout", fmt.Errorf("%w: %w", leashtls.ErrRevocationUnavailable, context.DeadlineExceeded), leashtls.ReasonRevocationUnavailable},
		{"role denied", leashtls.ErrRoleDenied, leashtls.ReasonRoleDenied},
		{"invalid identity", leashtls.ErrInvalidIdentity, leashtls.ReasonNoIdentity},
		{"no identity", leashtls.ErrNoIdentity, leashtls.ReasonNoIdentity},
		{"ambiguous identity", leashtls.ErrAmbiguousIdentity, leashtls.ReasonNoIdentity},
		{"expired", leashtls.ErrExpired, leashtls.ReasonExpired},
		{"bad usage", leashtls.ErrBadUsage, leashtls.ReasonBadUsage},
		{"no client cert", leashtls.ErrNoClientCert, leashtls.ReasonNoClientCert},
		{"not verified", leashtls.ErrNotVerified, leashtls.ReasonUnknownAuthority},
		{"x509 unknown authority", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, leashtls.ReasonUnknownAuthority},
		{"x509 expired", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}, leashtls.ReasonExpired},
		{"x509 usage", &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}}, leashtls.ReasonBadUsage},
		{"x509 signed by a leaf", x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}, leashtls.ReasonUnknownAuthority},
		{"x509 hostname", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "x"}, leashtls.ReasonOther},
		{"go: no client cert", errors.New("tls: client didn't provide a certificate"), leashtls.ReasonNoClientCert},
		{"go: version", errors.New("tls: client offered only unsupported versions: [303]"), leashtls.ReasonProtocol},
		{"go: cipher", errors.New("tls: no cipher suite supported by both client and server; client offered: [1301]"), leashtls.ReasonProtocol},
		{"record header", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, leashtls.ReasonProtocol},
		{"alert certificate required", remote(116), leashtls.ReasonNoClientCert},
		{"alert unknown CA", remote(48), leashtls.ReasonUnknownAuthority},
		{"alert expired", remote(45), leashtls.ReasonExpired},
		{"alert revoked", remote(44), leashtls.ReasonRevoked},
		{"alert protocol version", remote(70), leashtls.ReasonProtocol},
		{"alert bad certificate", remote(42), leashtls.ReasonOther},
		{"alert internal error", remote(80), leashtls.ReasonOther},
		{"QUIC alert", fmt.Errorf("quic: %w", tls.AlertError(116)), leashtls.ReasonNoClientCert},
		{"local op error", &net.OpError{Op: "read", Err: io.EOF}, leashtls.ReasonOther},
		{"EOF", io.EOF, leashtls.ReasonOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := leashtls.FailureReason(tt.err); got != tt.want {
				t.Errorf("FailureReason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
