package leashtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
)

// Reason is a short, stable label for why a handshake failed, fit for a
// metric label or a log field. New reasons are added rarely and never
// renamed.
type Reason string

// Handshake failure reasons.
const (
	ReasonNoClientCert          Reason = "no_client_cert"
	ReasonUnknownAuthority      Reason = "unknown_authority"
	ReasonExpired               Reason = "expired"
	ReasonRevoked               Reason = "revoked"
	ReasonBadUsage              Reason = "bad_usage"
	ReasonNoIdentity            Reason = "no_identity"
	ReasonRoleDenied            Reason = "role_denied"
	ReasonRevocationUnavailable Reason = "revocation_unavailable"
	ReasonProtocol              Reason = "protocol"
	ReasonOther                 Reason = "other"
)

// Reasons lists every reason, in a stable order, for example to create
// metric series up front.
func Reasons() []Reason {
	return []Reason{
		ReasonNoClientCert, ReasonUnknownAuthority, ReasonExpired, ReasonRevoked,
		ReasonBadUsage, ReasonNoIdentity, ReasonRoleDenied, ReasonRevocationUnavailable,
		ReasonProtocol, ReasonOther,
	}
}

// FailureReason classifies a handshake error, from either side of the
// connection, into one of Reasons. It returns "" for a nil error and
// ReasonOther for anything it does not recognise.
//
// It understands, in order: this package's sentinel errors (the rejections
// ServerConfig's VerifyConnection makes), x509 verification errors (Go's own
// chain verification, which runs before VerifyConnection), TLS alerts
// received from the peer (how a client learns why the server refused it),
// malformed records (plain text spoken to a TLS port), and the few
// crypto/tls errors that exist only as text (a missing client certificate,
// a version or cipher mismatch).
func FailureReason(err error) Reason {
	if err == nil {
		return ""
	}
	for _, s := range []struct {
		err    error
		reason Reason
	}{
		{ErrRevoked, ReasonRevoked},
		{ErrRevocationUnavailable, ReasonRevocationUnavailable},
		{ErrRoleDenied, ReasonRoleDenied},
		{ErrInvalidIdentity, ReasonNoIdentity},
		{ErrNoIdentity, ReasonNoIdentity},
		{ErrAmbiguousIdentity, ReasonNoIdentity},
		{ErrExpired, ReasonExpired},
		{ErrBadUsage, ReasonBadUsage},
		{ErrNoClientCert, ReasonNoClientCert},
		{ErrNotVerified, ReasonUnknownAuthority},
	} {
		if errors.Is(err, s.err) {
			return s.reason
		}
	}

	var unknownAuthority x509.UnknownAuthorityError
	if errors.As(err, &unknownAuthority) {
		return ReasonUnknownAuthority
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		switch invalid.Reason {
		case x509.Expired:
			return ReasonExpired
		case x509.IncompatibleUsage:
			return ReasonBadUsage
		case x509.NotAuthorizedToSign, x509.CANotAuthorizedForThisName, x509.TooManyIntermediates:
			return ReasonUnknownAuthority
		default:
			return ReasonOther
		}
	}

	if r, ok := alertReason(err); ok {
		return r
	}

	var header tls.RecordHeaderError
	if errors.As(err, &header) {
		return ReasonProtocol
	}

	msg := err.Error()
	if strings.Contains(msg, "didn't provide a certificate") {
		return ReasonNoClientCert
	}
	for _, s := range []string{
		"unsupported versions",
		"unsupported protocol version",
		"older than TLS 1.3",
		"no cipher suite supported",
		"no key exchanges supported",
		"inappropriate protocol fallback",
		"application protocol",
		"unexpected message",
	} {
		if strings.Contains(msg, s) {
			return ReasonProtocol
		}
	}
	return ReasonOther
}

// alertReason maps a TLS alert received from the peer. crypto/tls reports
// one as a *net.OpError with Op "remote error" whose Err is an unexported
// type that prints exactly like the matching tls.AlertError, so the alert
// is recognised by that text; QUIC connections return tls.AlertError itself.
func alertReason(err error) (Reason, bool) {
	var text string
	var ae tls.AlertError
	var op *net.OpError
	switch {
	case errors.As(err, &ae):
		text = ae.Error()
	case errors.As(err, &op) && op.Op == "remote error" && op.Err != nil:
		text = op.Err.Error()
	default:
		return "", false
	}
	for _, a := range []struct {
		code   uint8
		reason Reason
	}{
		{116, ReasonNoClientCert},    // certificate_required
		{48, ReasonUnknownAuthority}, // unknown_ca
		{45, ReasonExpired},          // certificate_expired
		{44, ReasonRevoked},          // certificate_revoked
		{43, ReasonBadUsage},         // unsupported_certificate
		{70, ReasonProtocol},         // protocol_version
		{40, ReasonProtocol},         // handshake_failure
		{10, ReasonProtocol},         // unexpected_message
		{47, ReasonProtocol},         // illegal_parameter
		{50, ReasonProtocol},         // decode_error
		{71, ReasonProtocol},         // insufficient_security
		{86, ReasonProtocol},         // inappropriate_fallback
		{109, ReasonProtocol},        // missing_extension
		{110, ReasonProtocol},        // unsupported_extension
		{120, ReasonProtocol},        // no_application_protocol
		// bad_certificate, which Go's server sends for every rejection made
		// by VerifyConnection, falls through to ReasonOther: the client
		// cannot tell which check failed; the server's log says.
	} {
		if text == tls.AlertError(a.code).Error() {
			return a.reason, true
		}
	}
	return ReasonOther, true
}
