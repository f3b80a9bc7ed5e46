package leashtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// RevocationChecker answers whether a client certificate is revoked. The
// serial is the certificate serial number in decimal, as Identity.Serial
// holds it. An error means "unknown", and the handshake fails closed.
type RevocationChecker interface {
	IsRevoked(ctx context.Context, serial string) (bool, error)
}

// NoRevocation is a RevocationChecker that never reports a certificate
// revoked. ServerConfig insists on a checker in mTLS mode so that
// revocation can never be off by omission; pass NoRevocation{} to turn it
// off on purpose, and let a reader of the call site see that you did.
type NoRevocation struct{}

// IsRevoked always reports false.
func (NoRevocation) IsRevoked(context.Context, string) (bool, error) { return false, nil }

// DefaultRevocationTimeout bounds one revocation lookup when
// ServerOptions.RevocationTimeout is zero.
const DefaultRevocationTimeout = 5 * time.Second

// ServerOptions configures ServerConfig.
type ServerOptions struct {
	Mode Mode

	// Certificate returns the server certificate; typically
	// Source.GetCertificate. Required unless Mode is ModePlain.
	Certificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// The fields below apply to ModeMTLS only. Setting any of them in
	// another mode is an error, so that client authentication is never
	// silently off because the mode was wrong.

	// ClientCAs verifies client certificates. Required in mTLS mode.
	ClientCAs *x509.CertPool
	// Revocation is consulted on every handshake, resumed sessions
	// included. Required in mTLS mode; see NoRevocation.
	Revocation RevocationChecker
	// RevocationTimeout bounds each lookup; zero means
	// DefaultRevocationTimeout. A lookup that times out fails the
	// handshake.
	RevocationTimeout time.Duration
	// Roles are the client roles allowed to connect; empty allows every
	// valid role.
	Roles []Role
	// OnReject, if set, is called with every handshake this package's
	// checks refuse, for metrics and logs. It runs on the handshake
	// goroutine and must not block. Failures crypto/tls detects before
	// those checks (no certificate, unknown CA, expired or wrong-usage
	// certificate on a fresh handshake, protocol errors) do not reach it:
	// they come back from the handshake itself, where FailureReason
	// classifies them the same way. The error names the certificate
	// presented; crypto/tls runs these checks before the client has proven
	// it holds that certificate's key, so treat the name as a claim.
	OnReject func(reason Reason, err error)

	// MinVersion is tls.VersionTLS13 (the default when zero) or, where an
	// old client needs it, tls.VersionTLS12. Nothing lower is accepted.
	MinVersion uint16
	// Now is the clock for certificate validity, ours and crypto/tls's
	// (it becomes Config.Time); default time.Now.
	Now func() time.Time
}

// ServerConfig builds the tls.Config of a listener.
//
// ModePlain returns (nil, nil): the listener must not use TLS at all.
// ModeHTTPS authenticates the server only. ModeMTLS also requires a client
// certificate that chains to ClientCAs with the clientAuth usage, and on
// every handshake, resumed sessions included, re-checks validity against
// Now, the clientAuth usage, the single leash:// identity, the allowed
// roles and revocation (see Config.VerifyConnection). Every option problem
// is reported at once, wrapped in ErrInvalidConfig.
func ServerConfig(opts ServerOptions) (*tls.Config, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Mode == ModePlain {
		return nil, nil
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	minVersion := opts.MinVersion
	if minVersion == 0 {
		minVersion = tls.VersionTLS13
	}
	cfg := &tls.Config{
		MinVersion:     minVersion,
		GetCertificate: opts.Certificate,
		Time:           now,
		ClientAuth:     tls.NoClientCert,
	}
	if opts.Mode == ModeHTTPS {
		return cfg, nil
	}

	timeout := opts.RevocationTimeout
	if timeout == 0 {
		timeout = DefaultRevocationTimeout
	}
	v := &verifier{
		now:        now,
		roles:      append([]Role(nil), opts.Roles...),
		revocation: opts.Revocation,
		timeout:    timeout,
		onReject:   opts.OnReject,
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = opts.ClientCAs
	cfg.VerifyConnection = v.verifyConnection
	return cfg, nil
}

func (o ServerOptions) validate() error {
	var problems []string
	if p := checkMinVersion(o.MinVersion); p != "" {
		problems = append(problems, p)
	}
	if o.RevocationTimeout < 0 {
		problems = append(problems, "RevocationTimeout must not be negative")
	}
	for _, r := range o.Roles {
		if !r.Valid() {
			problems = append(problems, fmt.Sprintf("unknown role %q in Roles (valid: %v)", r, Roles()))
		}
	}
	switch {
	case !o.Mode.Valid():
		_, err := ParseMode(string(o.Mode))
		problems = append(problems, err.Error())
	case o.Mode == ModeMTLS:
		if o.Certificate == nil {
			problems = append(problems, "Certificate is required in mtls mode")
		}
		if o.ClientCAs == nil {
			problems = append(problems, "ClientCAs is required in mtls mode")
		}
		if o.Revocation == nil {
			problems = append(problems, "Revocation is required in mtls mode (pass leashtls.NoRevocation{} to turn revocation checks off on purpose)")
		}
	default:
		if o.Mode == ModeHTTPS && o.Certificate == nil {
			problems = append(problems, "Certificate is required in https mode")
		}
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"ClientCAs", o.ClientCAs != nil},
			{"Revocation", o.Revocation != nil},
			{"Roles", len(o.Roles) > 0},
		} {
			if f.set {
				problems = append(problems, fmt.Sprintf("%s only applies in mtls mode, not in mode %q", f.name, o.Mode))
			}
		}
	}
	return joinProblems(problems)
}

func checkMinVersion(v uint16) string {
	switch v {
	case 0, tls.VersionTLS12, tls.VersionTLS13:
		return ""
	default:
		return fmt.Sprintf("MinVersion %s is not allowed: use TLS 1.3 (the default) or TLS 1.2", tls.VersionName(v))
	}
}

func joinProblems(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
}
