package ca

import (
	"context"
	"time"
)

// Store is the persistence the CA needs. It is the single source of truth for
// issued certificates, revocations, enrollment tokens and the current CRL; the
// step authority reaches it only through the adapter in authdb.go.
//
// Implementations live in gateway/store (SQLite and PostgreSQL) and must pass
// the shared conformance suite in gateway/store/storetest. Every method is safe
// for concurrent use, including from several processes sharing one database.
type Store interface {
	// PutCertificate records an issued certificate. Serial is unique;
	// storing the same serial twice returns ErrExists.
	PutCertificate(ctx context.Context, rec CertRecord) error
	// Certificate returns the record for serial (decimal), or ErrNotFound.
	Certificate(ctx context.Context, serial string) (CertRecord, error)
	// Certificates lists records matching q, newest first.
	Certificates(ctx context.Context, q CertQuery) ([]CertRecord, error)

	// Revoke records a revocation. It returns ErrAlreadyRevoked when serial
	// is already revoked and leaves the first revocation untouched. A
	// revocation may name a serial the store holds no certificate for.
	Revoke(ctx context.Context, r Revocation) error
	// Revocation returns the revocation of serial, or ErrNotFound.
	Revocation(ctx context.Context, serial string) (Revocation, error)
	// Revocations lists every revocation, oldest first.
	Revocations(ctx context.Context) ([]Revocation, error)

	// PutToken records a newly minted token. ID is unique (ErrExists).
	PutToken(ctx context.Context, rec TokenRecord) error
	// Token returns the record for id, or ErrNotFound.
	Token(ctx context.Context, id string) (TokenRecord, error)
	// Tokens lists token records matching q, newest first.
	Tokens(ctx context.Context, q TokenQuery) ([]TokenRecord, error)
	// SpendToken marks id used at the given time. It must be atomic: of any
	// number of concurrent calls for one id (from any process) exactly one
	// succeeds. It returns ErrNotFound for an unknown id, ErrTokenUsed when
	// already spent and ErrTokenRevoked when revoked.
	SpendToken(ctx context.Context, id string, at time.Time) error
	// RevokeToken marks an unused token revoked. It returns ErrNotFound,
	// ErrTokenUsed (already spent: nothing to revoke) or ErrTokenRevoked.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// SetTokenCertificate links a spent token to the certificate it produced.
	SetTokenCertificate(ctx context.Context, id, serial string) error

	// CRL returns the newest stored CRL, or ErrNotFound when none exists.
	CRL(ctx context.Context) (CRLRecord, error)
	// PutCRL stores a CRL; numbers only grow (a lower or equal number than
	// the stored one returns ErrExists and keeps the newer CRL).
	PutCRL(ctx context.Context, rec CRLRecord) error
}

// CertRecord is one issued certificate.
type CertRecord struct {
	Serial    string    // decimal serial number, as step stores it
	Profile   string    // profile name: server, runner, operator, prometheus, ui-proxy
	Subject   string    // subject common name
	SANs      []string  // DNS names, IPs and URIs, in that order
	NotBefore time.Time // UTC
	NotAfter  time.Time // UTC
	IssuedAt  time.Time // UTC
	DER       []byte    // the leaf certificate
	// Revocation fields are filled by Certificate/Certificates when the
	// serial is revoked; PutCertificate ignores them.
	RevokedAt  time.Time
	ReasonCode int
	Reason     string
}

// Revoked reports whether the record carries a revocation.
func (r CertRecord) Revoked() bool { return !r.RevokedAt.IsZero() }

// CertQuery filters Certificates. Zero values match everything.
type CertQuery struct {
	Profile string
	Subject string
	// NotAfterBefore keeps certificates expiring before this instant.
	NotAfterBefore time.Time
	// Revoked: nil = any, true = only revoked, false = only not revoked.
	Revoked *bool
	Limit   int // 0 = no limit
}

// Revocation is one revoked serial.
type Revocation struct {
	Serial     string
	ReasonCode int // RFC 5280 reason code
	Reason     string
	RevokedAt  time.Time // UTC
	ExpiresAt  time.Time // the certificate's NotAfter when known; zero otherwise
}

// Token kinds.
const (
	TokenEnroll = "enroll" // handed to a runner or operator to enroll once
	TokenDirect = "direct" // minted and spent internally by Issue
)

// TokenRecord is one minted one-time token. The token string itself is never
// stored: only its id (the JWT "jti") and what it is bound to.
type TokenRecord struct {
	ID         string
	Kind       string // TokenEnroll or TokenDirect
	Profile    string
	Subject    string // runner id or client name the token is bound to
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     time.Time // zero while unused
	RevokedAt  time.Time // zero unless revoked
	CertSerial string    // certificate the token produced, once spent
}

// TokenQuery filters Tokens. Zero values match everything.
type TokenQuery struct {
	Kind    string
	Subject string
	Limit   int
}

// CRLRecord is one signed CRL.
type CRLRecord struct {
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	Duration   time.Duration
	DER        []byte
}
