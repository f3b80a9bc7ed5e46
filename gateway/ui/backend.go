package ui

import (
	"context"
	"errors"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

// ErrNotFound is what Backend returns for a runner, certificate or token
// that does not exist.
var ErrNotFound = store.ErrNotFound

// ErrInvalid wraps a request the backend refuses as malformed (an unknown
// reason, a bad name); its text is shown to the user.
var ErrInvalid = errors.New("invalid request")

// Backend is what the UI needs from the gateway. actor arguments name the
// person for the audit log.
type Backend interface {
	// Runners lists every runner, ordered by id.
	Runners(ctx context.Context) ([]protocol.Runner, error)
	// Runner returns one runner or ErrNotFound.
	Runner(ctx context.Context, id string) (protocol.Runner, error)
	// Events lists a runner's events after seq, oldest first.
	Events(ctx context.Context, runner string, afterSeq int64, limit int) ([]store.EventRecord, error)
	// Jobs lists jobs newest first; runner "" means all.
	Jobs(ctx context.Context, runner string, limit int) ([]protocol.Job, error)
	// Containers lists what the runner's Docker Engine runs (an error when
	// it has no tunnel or no Docker).
	Containers(ctx context.Context, runner string) ([]protocol.Container, error)
	// Domains lists the HTTP domains routed to runner.
	Domains(ctx context.Context, runner string) ([]protocol.Domain, error)
	// Session tells the runner's session ports and live session.
	Session(ctx context.Context, runner string) (protocol.SessionStatus, error)
	// RevokeRunner revokes every live certificate of the runner.
	RevokeRunner(ctx context.Context, id, reason, actor string) error
	// Certificates lists the inventory, newest first.
	Certificates(ctx context.Context, limit int) ([]ca.CertInfo, error)
	// RevokeCert revokes one certificate by decimal serial and cuts its
	// live connections.
	RevokeCert(ctx context.Context, serial, reason, text, actor string) error
	// CRL returns the current CRL in DER.
	CRL(ctx context.Context) ([]byte, error)
	// Tokens lists enrollment tokens, newest first.
	Tokens(ctx context.Context) ([]ca.TokenInfo, error)
	// CreateToken mints a runner enrollment token for name; regenerate
	// first revokes the name's pending tokens.
	CreateToken(ctx context.Context, name string, regenerate bool, actor string) (ca.Token, error)
	// RevokeToken revokes an unused token.
	RevokeToken(ctx context.Context, id, actor string) error
	// Audit lists audit rows newest first.
	Audit(ctx context.Context, limit int) ([]store.AuditRecord, error)
}

// Install tells the token page how a runner reaches the gateway.
type Install struct {
	GatewayURL string // https://host:port of the API listener
	EnrollURL  string // https://host:port of the enrollment listener
	// RunnerBinarySHA256 is the hex SHA-256 of the leash-runner binary
	// offered for download; empty: unknown.
	RunnerBinarySHA256 string
	RootFingerprint    string
}
