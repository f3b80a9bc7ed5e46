package ca

import (
	"crypto/x509"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	leashtls "github.com/leashpki/leash/tls"
)

// Profile names.
const (
	ProfileServer     = "server"
	ProfileRunner     = "runner"
	ProfileOperator   = "operator"
	ProfilePrometheus = "prometheus"
	ProfileUIProxy    = "ui-proxy"
)

// Profile is what a certificate of one kind may contain and how long it
// lives. The X.509 template built from it decides subject, SANs, key usage
// and EKU; nothing in a CSR can widen it.
type Profile struct {
	Name string
	// Role is the client role carried in the leash:// URI SAN; empty for
	// the server profile.
	Role      leashtls.Role
	EKU       x509.ExtKeyUsage
	Lifetimes Lifetimes
}

// Client reports whether certificates of this profile authenticate clients.
func (p Profile) Client() bool { return p.Role != "" }

// builtinProfiles returns the built-in profiles with their default
// lifetimes: runner certs are short-lived and rotated automatically, the
// others are operated by people and last longer.
func builtinProfiles() map[string]Profile {
	h := func(d time.Duration) Duration { return Duration(d) }
	day := 24 * time.Hour
	return map[string]Profile{
		ProfileServer: {Name: ProfileServer, EKU: x509.ExtKeyUsageServerAuth,
			Lifetimes: Lifetimes{Default: h(90 * day), Min: h(time.Hour), Max: h(398 * day)}},
		ProfileRunner: {Name: ProfileRunner, Role: leashtls.RoleRunner, EKU: x509.ExtKeyUsageClientAuth,
			Lifetimes: Lifetimes{Default: h(day), Min: h(10 * time.Second), Max: h(30 * day)}},
		ProfileOperator: {Name: ProfileOperator, Role: leashtls.RoleOperator, EKU: x509.ExtKeyUsageClientAuth,
			Lifetimes: Lifetimes{Default: h(7 * day), Min: h(time.Minute), Max: h(90 * day)}},
		ProfilePrometheus: {Name: ProfilePrometheus, Role: leashtls.RolePrometheus, EKU: x509.ExtKeyUsageClientAuth,
			Lifetimes: Lifetimes{Default: h(90 * day), Min: h(time.Hour), Max: h(398 * day)}},
		ProfileUIProxy: {Name: ProfileUIProxy, Role: leashtls.RoleUIProxy, EKU: x509.ExtKeyUsageClientAuth,
			Lifetimes: Lifetimes{Default: h(90 * day), Min: h(time.Hour), Max: h(398 * day)}},
	}
}

// ProfileNames lists the profile names, sorted.
func ProfileNames() []string {
	var names []string
	for n := range builtinProfiles() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ProfileForRole returns the profile name for a client role.
func ProfileForRole(role leashtls.Role) (string, error) {
	for _, p := range builtinProfiles() {
		if p.Role == role && role != "" {
			return p.Name, nil
		}
	}
	return "", fmt.Errorf("%w: unknown role %q: use one of %v", ErrUnknownProfile, role, leashtls.Roles())
}

// profiles merges the settings' overrides into the built-in profiles.
func profilesFor(s Settings) map[string]Profile {
	ps := builtinProfiles()
	for name, l := range s.Profiles {
		if p, ok := ps[name]; ok {
			p.Lifetimes = l
			ps[name] = p
		}
	}
	return ps
}

// sans returns the SANs a certificate of profile p for subject must carry.
// Server certificates take hosts (IP literals and DNS names are told apart);
// client certificates carry exactly their leash:// identity URI.
func (p Profile) sans(subject string, hosts []string) ([]string, error) {
	if p.Client() {
		if len(hosts) > 0 {
			return nil, fmt.Errorf("%w: %s certificates carry no host names", ErrPolicy, p.Name)
		}
		u, err := leashtls.IdentityURI(p.Role, subject)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
		}
		return []string{u.String()}, nil
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%w: a server certificate needs at least one host name or IP", ErrPolicy)
	}
	seen := map[string]bool{}
	var out []string
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(strings.Trim(h, "[]")); ip != nil {
			h = ip.String()
		} else if err := validDNSName(h); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrPolicy, err)
		} else {
			h = strings.ToLower(h)
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: a server certificate needs at least one host name or IP", ErrPolicy)
	}
	return out, nil
}

func validDNSName(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("host name %q is longer than 253 characters", h)
	}
	labels := strings.Split(h, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) > 2 {
			continue
		}
		if l == "" || len(l) > 63 {
			return fmt.Errorf("host %q is neither an IP address nor a valid DNS name", h)
		}
		for j, r := range l {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' && j > 0 && j < len(l)-1
			if !ok {
				return fmt.Errorf("host %q is neither an IP address nor a valid DNS name", h)
			}
		}
	}
	return nil
}

// template is the step X.509 template of the profile. Subject and SANs
// come from the (verified) token only; the CSR contributes its public key.
func (p Profile) template() string {
	eku := "clientAuth"
	if p.EKU == x509.ExtKeyUsageServerAuth {
		eku = "serverAuth"
	}
	return `{
	"subject": {"commonName": {{ toJson .Subject.CommonName }}},
	"sans": {{ toJson .SANs }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["` + eku + `"],
	"basicConstraints": {"isCA": false}
}`
}

// ParseProfileName checks that name is a profile.
func ParseProfileName(name string) (string, error) {
	if _, ok := builtinProfiles()[name]; !ok {
		return "", fmt.Errorf("%w %q: use one of %v", ErrUnknownProfile, name, ProfileNames())
	}
	return name, nil
}
