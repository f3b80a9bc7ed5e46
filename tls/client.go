package leashtls

import (
	"crypto/tls"
	"crypto/x509"
	"time"
)

// ClientOptions configures ClientConfig.
type ClientOptions struct {
	// Roots verifies the server certificate. Required: a Leash client never
	// falls back to the system roots.
	Roots *x509.CertPool
	// ServerName overrides the name checked against the server certificate
	// (and sent as SNI); empty means the host being dialled.
	ServerName string
	// Certificate returns the client certificate; typically
	// Source.GetClientCertificate. Optional for HTTPS, required by an mTLS
	// server.
	Certificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	// MinVersion is tls.VersionTLS13 (the default when zero) or
	// tls.VersionTLS12.
	MinVersion uint16
	// Now is the clock for certificate validity; default time.Now.
	Now func() time.Time
}

// ClientConfig builds the tls.Config of a client. Every option problem is
// reported at once, wrapped in ErrInvalidConfig.
func ClientConfig(opts ClientOptions) (*tls.Config, error) {
	var problems []string
	if opts.Roots == nil {
		problems = append(problems, "Roots is required (the system roots are never used)")
	}
	if p := checkMinVersion(opts.MinVersion); p != "" {
		problems = append(problems, p)
	}
	if err := joinProblems(problems); err != nil {
		return nil, err
	}
	minVersion := opts.MinVersion
	if minVersion == 0 {
		minVersion = tls.VersionTLS13
	}
	return &tls.Config{
		RootCAs:              opts.Roots,
		ServerName:           opts.ServerName,
		GetClientCertificate: opts.Certificate,
		MinVersion:           minVersion,
		Time:                 opts.Now,
	}, nil
}
