package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Policy is the client policy of one HTTP domain. The zero value admits
// everyone, always, without limits. Validate never changes a Policy.
type Policy struct {
	// AllowCIDRs lists the client networks admitted (a bare address is one
	// host); empty admits every address.
	AllowCIDRs []string `yaml:"allow_cidrs,omitempty" json:"allow_cidrs,omitempty"`
	// TimeRanges lists when requests are admitted, in UTC:
	// "Mon-Fri 08:00-18:00", "Sat 10:00-12:00", "22:00-02:00" (every day,
	// across midnight). Empty admits at any time.
	TimeRanges []string `yaml:"time_ranges,omitempty" json:"time_ranges,omitempty"`
	// Credentials, when present, require HTTP Basic authentication.
	Credentials []Credential `yaml:"credentials,omitempty" json:"credentials,omitempty"`
	// Realm is named in the Basic challenge; default: the domain name
	// (WithDomain), else "leash".
	Realm string `yaml:"realm,omitempty" json:"realm,omitempty"`
	// TrustedForwarders are the proxies whose X-Forwarded-For (and
	// X-Transaction-Id) is believed.
	TrustedForwarders []string `yaml:"trusted_forwarders,omitempty" json:"trusted_forwarders,omitempty"`
	// MaxConcurrent bounds the requests in flight (0: no bound); a
	// WebSocket or SSE stream holds its slot while it lasts.
	MaxConcurrent int `yaml:"max_concurrent,omitempty" json:"max_concurrent,omitempty"`
	// MaxBodyBytes bounds a request body (0: no bound).
	MaxBodyBytes int64 `yaml:"max_body_bytes,omitempty" json:"max_body_bytes,omitempty"`
	// Server timeouts, applied by the server, not here (0: its default).
	ReadTimeout  Duration `yaml:"read_timeout,omitempty" json:"read_timeout,omitempty"`
	WriteTimeout Duration `yaml:"write_timeout,omitempty" json:"write_timeout,omitempty"`
	IdleTimeout  Duration `yaml:"idle_timeout,omitempty" json:"idle_timeout,omitempty"`
	// Stealth answers every access refusal with a plain 404; see the
	// package documentation.
	Stealth bool `yaml:"stealth,omitempty" json:"stealth,omitempty"`
}

// Credential is one user allowed in by HTTP Basic authentication. Hash is
// bcrypt ($2a$, $2b$, $2y$) or sha512-crypt ($6$[rounds=N$]salt$sum).
type Credential struct {
	User string `yaml:"user" json:"user"`
	Hash string `yaml:"hash" json:"hash"`
}

// String keeps the hash out of printed configurations.
func (c Credential) String() string { return c.User + ":<hash redacted>" }

// LogValue keeps the hash out of logs.
func (c Credential) LogValue() slog.Value { return slog.GroupValue(slog.String("user", c.User)) }

// Duration is a time.Duration written as text ("30s", "2m") in YAML and
// JSON. A JSON number is refused: it would silently mean nanoseconds.
type Duration time.Duration

// MarshalText writes d like time.Duration.String.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a time.ParseDuration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON accepts a JSON string only.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: write it as a string such as \"30s\": %w", b, err)
	}
	return d.UnmarshalText([]byte(s))
}

// Timeouts are the server timeouts a Policy carries; zero means the
// server's default.
type Timeouts struct {
	Read, Write, Idle time.Duration
}

// Timeouts returns p's server timeouts.
func (p Policy) Timeouts() Timeouts {
	return Timeouts{Read: time.Duration(p.ReadTimeout), Write: time.Duration(p.WriteTimeout), Idle: time.Duration(p.IdleTimeout)}
}

// Validate returns every problem with p at once, wrapped in ErrPolicy.
func (p Policy) Validate() error {
	_, err := compile(p, "")
	return err
}

// compiled is a validated Policy in the form requests are checked against.
// It never changes; a reload builds a new one.
type compiled struct {
	src        Policy
	allow      []netip.Prefix
	forwarders []netip.Prefix
	windows    []window
	creds      []credential
	challenge  string // WWW-Authenticate value
	cache      *authCache
}

// compile validates p, collecting every problem, and prepares it.
func compile(p Policy, domain string) (*compiled, error) {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	c := &compiled{src: p, cache: newAuthCache()}

	for i, s := range p.AllowCIDRs {
		pf, err := parsePrefix(s)
		if err != nil {
			add("allow_cidrs[%d] %q: %v", i, s, err)
			continue
		}
		c.allow = append(c.allow, pf)
	}
	for i, s := range p.TrustedForwarders {
		pf, err := parsePrefix(s)
		switch {
		case err != nil:
			add("trusted_forwarders[%d] %q: %v", i, s, err)
		case pf.Bits() == 0:
			add("trusted_forwarders[%d] %q trusts every peer: anyone could claim any address in X-Forwarded-For", i, s)
		default:
			c.forwarders = append(c.forwarders, pf)
		}
	}
	for i, s := range p.TimeRanges {
		w, err := parseWindow(s)
		if err != nil {
			add("time_ranges[%d] %q: %v", i, s, err)
			continue
		}
		c.windows = append(c.windows, w)
	}

	seen := map[string]int{}
	for i, cr := range p.Credentials {
		switch {
		case cr.User == "":
			add("credentials[%d]: user is empty", i)
		case strings.Contains(cr.User, ":"):
			add("credentials[%d] user %q contains ':', which HTTP Basic cannot carry", i, cr.User)
		case hasControl(cr.User):
			add("credentials[%d] user %q contains control characters", i, cr.User)
		}
		if j, dup := seen[cr.User]; dup && cr.User != "" {
			add("credentials[%d] user %q repeats credentials[%d]", i, cr.User, j)
		} else {
			seen[cr.User] = i
		}
		v, err := verifierFor(cr.Hash)
		if err != nil {
			add("credentials[%d] (user %q) hash: %w", i, cr.User, err)
			continue
		}
		c.creds = append(c.creds, newCredential(cr.User, v))
	}

	if p.Realm != "" && len(p.Credentials) == 0 {
		add("realm is set but there are no credentials to ask for")
	}
	if strings.ContainsAny(p.Realm, `"\`) || hasControl(p.Realm) {
		add("realm %q: quotes, backslashes and control characters are not allowed", p.Realm)
	}
	if p.MaxConcurrent < 0 {
		add("max_concurrent %d is negative (0 means no bound)", p.MaxConcurrent)
	}
	if p.MaxBodyBytes < 0 {
		add("max_body_bytes %d is negative (0 means no bound)", p.MaxBodyBytes)
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"read_timeout", p.ReadTimeout}, {"write_timeout", p.WriteTimeout}, {"idle_timeout", p.IdleTimeout}} {
		if d.v < 0 {
			add("%s %s is negative (0 means the server's default)", d.name, time.Duration(d.v))
		}
	}

	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w:\n%w", ErrPolicy, err)
	}
	realm := p.Realm
	if realm == "" {
		realm = domain
	}
	if realm == "" || strings.ContainsAny(realm, `"\`) || hasControl(realm) {
		realm = "leash"
	}
	c.challenge = `Basic realm="` + realm + `", charset="UTF-8"`
	return c, nil
}

// hasControl reports ASCII control characters (and DEL).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
