package leashtls

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Role is what a client certificate is for. It is carried in the URI SAN
// leash://<role>/<name> and nowhere else: the subject CN is informational.
type Role string

// Client roles. Server certificates carry no role.
const (
	RoleRunner     Role = "runner"
	RoleOperator   Role = "operator"
	RolePrometheus Role = "prometheus"
	RoleUIProxy    Role = "ui-proxy"
)

// URIScheme is the scheme of identity URI SANs.
const URIScheme = "leash"

// Roles lists every client role, in a stable order.
func Roles() []Role { return []Role{RoleRunner, RoleOperator, RolePrometheus, RoleUIProxy} }

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	for _, k := range Roles() {
		if r == k {
			return true
		}
	}
	return false
}

// maxNameLen bounds identity names; they end up in URIs, file names and logs.
const maxNameLen = 63

// ValidName checks a runner id or client name: 1–63 characters of lower-case
// letters, digits and '-', '.', '_', starting and ending with a letter or
// digit. The rule keeps names safe in URIs, paths, SQL and log lines.
func ValidName(name string) error {
	if name == "" {
		return errors.New("name is empty")
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("name %q is %d characters long; at most %d are allowed", name, len(name), maxNameLen)
	}
	for i, c := range name {
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		switch {
		case alnum:
		case (c == '-' || c == '.' || c == '_') && i > 0 && i < len(name)-1:
		default:
			return fmt.Errorf("name %q: character %q at position %d is not allowed (use a-z, 0-9 and inner '-', '.', '_')", name, c, i+1)
		}
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("name %q must not contain \"..\"", name)
	}
	return nil
}

// IdentityURI returns leash://<role>/<name> after validating both parts.
func IdentityURI(role Role, name string) (*url.URL, error) {
	if !role.Valid() {
		return nil, fmt.Errorf("unknown role %q", role)
	}
	if err := ValidName(name); err != nil {
		return nil, err
	}
	return &url.URL{Scheme: URIScheme, Host: string(role), Path: "/" + name}, nil
}

// Identity is who a verified peer is.
type Identity struct {
	Role Role
	Name string
	// Serial is the certificate serial in decimal, as the CA stores it.
	Serial string
}

// String renders the identity as its URI.
func (id Identity) String() string {
	return (&url.URL{Scheme: URIScheme, Host: string(id.Role), Path: "/" + id.Name}).String()
}

// Errors returned by IdentityFromCert.
var (
	ErrNoIdentity        = errors.New("certificate carries no leash:// identity URI SAN")
	ErrAmbiguousIdentity = errors.New("certificate carries more than one leash:// identity URI SAN")
)

// ParseIdentityURI parses leash://<role>/<name>.
func ParseIdentityURI(u *url.URL) (Identity, error) {
	if u == nil || u.Scheme != URIScheme {
		return Identity{}, ErrNoIdentity
	}
	if u.User != nil || u.Port() != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return Identity{}, fmt.Errorf("identity URI %q has extra parts", u.String())
	}
	role := Role(u.Host)
	if !role.Valid() {
		return Identity{}, fmt.Errorf("identity URI %q: unknown role %q", u.String(), u.Host)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if err := ValidName(name); err != nil {
		return Identity{}, fmt.Errorf("identity URI %q: %w", u.String(), err)
	}
	return Identity{Role: role, Name: name}, nil
}

// IdentityFromCert extracts the single leash:// identity of a client
// certificate. It does not verify the certificate; callers do that first.
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != URIScheme {
			continue
		}
		id, err := ParseIdentityURI(u)
		if err != nil {
			return Identity{}, err
		}
		found = append(found, id)
	}
	switch len(found) {
	case 0:
		return Identity{}, ErrNoIdentity
	case 1:
		id := found[0]
		id.Serial = cert.SerialNumber.String()
		return id, nil
	default:
		return Identity{}, ErrAmbiguousIdentity
	}
}
