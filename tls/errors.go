package leashtls

import "errors"

// Configuration errors.
var (
	// ErrInvalidMode is returned by ParseMode for an unknown mode.
	ErrInvalidMode = errors.New("invalid TLS mode")
	// ErrInvalidConfig wraps every problem ServerConfig and ClientConfig
	// find in their options.
	ErrInvalidConfig = errors.New("invalid TLS configuration")
)

// Handshake rejections. VerifyConnection in mTLS mode returns one of these
// (wrapped, with details); FailureReason maps each to a Reason. ErrNoIdentity
// and ErrAmbiguousIdentity in identity.go belong to the same family.
var (
	// ErrNoClientCert: the client presented no certificate.
	ErrNoClientCert = errors.New("client presented no certificate")
	// ErrNotVerified: a certificate is present but no verified chain is,
	// which means chain verification was turned off underneath us.
	ErrNotVerified = errors.New("client certificate was not verified against the client CAs")
	// ErrExpired: the certificate (or its chain) is outside its validity
	// window, typically a resumed session that outlived the certificate.
	ErrExpired = errors.New("client certificate is expired or not yet valid")
	// ErrBadUsage: the leaf lacks the clientAuth extended key usage or is a
	// CA certificate.
	ErrBadUsage = errors.New("certificate is not a client certificate")
	// ErrInvalidIdentity: the leaf carries no single valid leash:// URI.
	ErrInvalidIdentity = errors.New("client certificate has no valid leash identity")
	// ErrRoleDenied: the identity's role is not allowed on this listener.
	ErrRoleDenied = errors.New("role not allowed")
	// ErrRevoked: the revocation checker reports the serial revoked.
	ErrRevoked = errors.New("client certificate is revoked")
	// ErrRevocationUnavailable: the revocation checker failed; the
	// handshake fails closed.
	ErrRevocationUnavailable = errors.New("revocation status unavailable")
)

// Key pair errors.
var (
	// ErrKeyMismatch: the private key does not belong to the certificate.
	ErrKeyMismatch = errors.New("private key does not match certificate")
	// ErrNoCertificate: a Source has nothing to serve yet.
	ErrNoCertificate = errors.New("no certificate loaded")
)
