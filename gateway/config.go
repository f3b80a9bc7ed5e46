package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/leashpki/leash/gateway/ui"
	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// Config configures a gateway. The zero value of every duration means its
// default; Validate never changes the Config.
type Config struct {
	ID      string // names this replica in answers and logs; default: hostname
	Version string

	Listen        string // API listener; default ":8443"
	EnrollListen  string // enrollment listener; default ":8444"; "off" disables it
	MetricsListen string // optional separate metrics listener (mTLS, MetricsClientCA)
	// PublicListen and PublicTLSListen serve the HTTP domains (plain HTTP
	// and HTTPS with SNI); empty: off. HTTPS certificates for the domains
	// are obtained on demand, at the first handshake, for served domains
	// only: from the ACME CA when ACME.Directory is set, otherwise from
	// the embedded CA.
	PublicListen    string
	PublicTLSListen string
	// PublicCerts are certificate files for the HTTP domains, each
	// "CERT.pem:KEY.pem", chosen by SNI from their DNS names (wildcards
	// included) before ACME or the embedded CA issues one; re-read when
	// changed.
	PublicCerts []string
	// ACME, when ACME.Directory is set, obtains the public certificates
	// from that ACME CA instead of the embedded CA, answering http-01 on
	// PublicListen and tls-alpn-01 on PublicTLSListen; the account and the
	// certificates live in the store, shared by the replicas.
	ACME ACMEConfig
	// DomainsDir, when set, is a directory of domain files (YAML or JSON:
	// name, runner, policy) kept in sync with the store (GitOps).
	DomainsDir string

	// Mode is plain, https or mtls. Empty derives it as FANGS does: no
	// certificate → plain; TLSCert+TLSKey → https; plus TLSClientCA → mtls.
	// With the embedded CA, "mtls" needs no files at all.
	Mode        leashtls.Mode
	TLSCert     string // server certificate chain PEM; empty: issued by the embedded CA
	TLSKey      string
	TLSClientCA string // client CA bundle; empty in mtls mode: the embedded CA's root
	// Hostnames go into the server certificate the embedded CA issues.
	Hostnames []string

	MetricsClientCA string // client CA for MetricsListen; empty: the embedded CA's root

	HeartbeatInterval time.Duration // default 5s
	OfflineAfter      time.Duration // default 10s
	JobLease          time.Duration // default 2m
	EventMaxAge       time.Duration // default 7 days
	EventsPerRunner   int           // default 10000
	RevocationPoll    time.Duration // default 250ms
	ReadHeaderTimeout time.Duration // default 5s (slowloris)

	// TunnelKeepAlive is the tunnels' keepalive interval (default 15s).
	TunnelKeepAlive time.Duration

	// Expose publishes runners' declared services on gateway ports.
	Expose []Exposure

	// UI serves the operator browser UI under /ui/ on the API listener.
	UI UIConfig

	// AllowInsecureRemote permits plain mode on a non-loopback address.
	// Without it such a configuration is refused: a plain gateway trusts
	// whatever a caller claims.
	AllowInsecureRemote bool
}

// Defaults.
const (
	DefaultListen            = ":8443"
	DefaultEnrollListen      = ":8444"
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultOfflineAfter      = 10 * time.Second
	DefaultJobLease          = 2 * time.Minute
	DefaultEventMaxAge       = 7 * 24 * time.Hour
	DefaultEventsPerRunner   = 10000
	DefaultRevocationPoll    = 250 * time.Millisecond
	DefaultReadHeaderTimeout = 5 * time.Second
	// EnrollOff disables the enrollment listener.
	EnrollOff = "off"
)

// withDefaults returns a copy of c with defaults filled in.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.EnrollListen == "" {
		c.EnrollListen = DefaultEnrollListen
	}
	if c.Mode == "" {
		switch {
		case c.TLSCert == "":
			c.Mode = leashtls.ModePlain
		case c.TLSClientCA != "":
			c.Mode = leashtls.ModeMTLS
		default:
			c.Mode = leashtls.ModeHTTPS
		}
	}
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.OfflineAfter, DefaultOfflineAfter)
	def(&c.JobLease, DefaultJobLease)
	def(&c.EventMaxAge, DefaultEventMaxAge)
	def(&c.RevocationPoll, DefaultRevocationPoll)
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	if c.EventsPerRunner == 0 {
		c.EventsPerRunner = DefaultEventsPerRunner
	}
	if len(c.Hostnames) == 0 {
		c.Hostnames = []string{"localhost", "127.0.0.1", "::1"}
	}
	return c
}

// Validate returns every problem with c (after defaults) at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !c.Mode.Valid() {
		add("mode %q: use plain, https or mtls", c.Mode)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		add("tls cert and tls key go together: set both or neither")
	}
	if c.TLSClientCA != "" && c.Mode != leashtls.ModeMTLS {
		add("a tls client CA is set but the mode is %s: client authentication would be silently off; use mode mtls", c.Mode)
	}
	for name, addr := range map[string]string{"listen": c.Listen, "enroll listen": c.EnrollListen, "metrics listen": c.MetricsListen,
		"public listen": c.PublicListen, "public tls listen": c.PublicTLSListen} {
		if addr == "" || addr == EnrollOff && name == "enroll listen" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			add("%s address %q: %v", name, addr, err)
		}
	}
	if c.Mode == leashtls.ModePlain && !c.AllowInsecureRemote && !loopback(c.Listen) {
		add("plain mode on %s is reachable from other hosts and trusts whatever callers claim; listen on 127.0.0.1, use https/mtls, or set allow insecure remote", c.Listen)
	}
	if c.MetricsListen != "" && c.Mode == leashtls.ModePlain {
		add("a separate metrics listener needs mtls mode")
	}
	for name, d := range map[string]time.Duration{"heartbeat interval": c.HeartbeatInterval, "offline after": c.OfflineAfter,
		"job lease": c.JobLease, "event max age": c.EventMaxAge, "revocation poll": c.RevocationPoll,
		"read header timeout": c.ReadHeaderTimeout} {
		if d < 0 {
			add("%s %s is negative", name, d)
		}
	}
	if c.OfflineAfter <= c.HeartbeatInterval {
		add("offline after (%s) must be longer than the heartbeat interval (%s)", c.OfflineAfter, c.HeartbeatInterval)
	}
	if c.JobLease < time.Second {
		add("job lease %s is shorter than 1s", c.JobLease)
	}
	if c.RevocationPoll > time.Second {
		add("revocation poll %s is longer than 1s: revoked peers must be cut off within a second", c.RevocationPoll)
	}
	for _, pc := range c.PublicCerts {
		if cert, key, ok := strings.Cut(pc, ":"); !ok || cert == "" || key == "" {
			add("public cert %q: want CERT.pem:KEY.pem", pc)
		}
	}
	if len(c.PublicCerts) > 0 && c.PublicTLSListen == "" {
		add("public certs are set but there is no public TLS listener")
	}
	errs = append(errs, c.ACME.problems(c.PublicTLSListen != "")...)
	seen := map[string]bool{}
	for _, e := range c.Expose {
		if err := e.validate(); err != nil {
			add("%v", err)
		}
		if seen[e.Listen] {
			add("expose: %s is used twice", e.Listen)
		}
		seen[e.Listen] = true
	}
	if c.EventsPerRunner < 0 {
		add("events per runner must not be negative")
	}
	if c.HeartbeatInterval > protocol.MaxJobWait*10 {
		add("heartbeat interval %s is unreasonably long", c.HeartbeatInterval)
	}
	errs = append(errs, c.UI.problems(c.Mode)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w:\n%w", ErrConfig, err)
	}
	return nil
}

// loopback reports whether addr listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ACMEConfig points the public listeners at an ACME CA. Zero: off.
type ACMEConfig struct {
	// Directory is the CA's directory URL (https://).
	Directory string
	// Email is the account's contact address (optional; the CA may use it
	// for expiry notices).
	Email string
	// CARoots is a PEM file of roots that the CA's HTTPS certificate
	// chains to (a private ACME CA); empty: the system roots.
	CARoots string
	// AgreeTOS records that the operator agreed to the CA's terms of
	// service; required, since the gateway registers the account unattended.
	AgreeTOS bool
	// EABKeyID and EABMACKeyFile bind the account to an external account
	// at CAs that require it: the key id and a file holding the
	// base64url-encoded HMAC key.
	EABKeyID      string
	EABMACKeyFile string
}

// Enabled reports whether ACME is configured.
func (a ACMEConfig) Enabled() bool { return a.Directory != "" }

// problems lists what is wrong with a; tlsListener tells whether a public
// TLS listener is configured.
func (a ACMEConfig) problems(tlsListener bool) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !a.Enabled() {
		if a != (ACMEConfig{}) {
			add("acme settings are given but no acme directory: set the ACME CA's directory URL")
		}
		return errs
	}
	if u, err := url.Parse(a.Directory); err != nil {
		add("acme directory %q: %w", a.Directory, err)
	} else if u.Scheme != "https" || u.Host == "" {
		add("acme directory %q: want an https:// URL", a.Directory)
	}
	if !tlsListener {
		add("an acme directory is set but there is no public TLS listener to serve its certificates")
	}
	if !a.AgreeTOS {
		add("acme: agree to the ACME CA's terms of service (acme agree tos): the gateway registers its account unattended")
	}
	if a.Email != "" {
		if m, err := mail.ParseAddress(a.Email); err != nil || m.Address != a.Email {
			add("acme email %q is not an email address", a.Email)
		}
	}
	if (a.EABKeyID == "") != (a.EABMACKeyFile == "") {
		add("acme eab key id and eab mac key file go together: set both or neither")
	}
	return errs
}

// UIConfig configures the browser UI (see package gateway/ui). Zero: off.
type UIConfig struct {
	Enabled bool
	// Prefix is the path prefix of the UI's links when no trusted proxy
	// sends X-Forwarded-Prefix; default /ui.
	Prefix string
	// TrustedProxies are CIDRs whose X-Forwarded-Proto, -Host and -Prefix
	// are honoured; others' are ignored.
	TrustedProxies []string
	// RunnerBinary is the leash-runner binary offered to new runners; its
	// SHA-256 is shown with the install snippets ("unknown" without it).
	RunnerBinary string
}

// trustedProxies parses TrustedProxies; problems reports the errors.
func (u UIConfig) trustedProxies() ([]netip.Prefix, []error) {
	var out []netip.Prefix
	var errs []error
	for _, c := range u.TrustedProxies {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			if a, aerr := netip.ParseAddr(strings.TrimSpace(c)); aerr == nil {
				out = append(out, netip.PrefixFrom(a, a.BitLen()))
				continue
			}
			errs = append(errs, fmt.Errorf("ui trusted proxy %q: want a CIDR such as 10.0.0.0/8 or an address", c))
			continue
		}
		out = append(out, p.Masked())
	}
	return out, errs
}

func (u UIConfig) problems(mode leashtls.Mode) []error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !u.Enabled {
		if u.Prefix != "" || len(u.TrustedProxies) > 0 || u.RunnerBinary != "" {
			add("ui settings are given but the ui is not enabled")
		}
		return errs
	}
	if mode != leashtls.ModeMTLS {
		add("the ui needs mtls mode: only a proxy with a ui-proxy certificate may use it")
	}
	if u.Prefix != "" {
		if err := ui.ValidPrefix(u.Prefix); err != nil {
			add("ui prefix: %v", err)
		}
	}
	_, perrs := u.trustedProxies()
	errs = append(errs, perrs...)
	if u.RunnerBinary != "" {
		if fi, err := os.Stat(u.RunnerBinary); err != nil {
			add("ui runner binary: %v", err)
		} else if !fi.Mode().IsRegular() {
			add("ui runner binary %s is not a regular file", u.RunnerBinary)
		}
	}
	return errs
}
