package leashtls

import (
	"fmt"
	"strings"
)

// Mode is how a listener speaks: plain TCP, TLS with server authentication
// only, or mutual TLS.
type Mode string

// Listener modes.
const (
	ModePlain Mode = "plain"
	ModeHTTPS Mode = "https"
	ModeMTLS  Mode = "mtls"
)

// Modes lists every mode, in a stable order.
func Modes() []Mode { return []Mode{ModePlain, ModeHTTPS, ModeMTLS} }

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool {
	for _, k := range Modes() {
		if m == k {
			return true
		}
	}
	return false
}

// ParseMode parses a mode name exactly as written in configuration: lower
// case, no surrounding space.
func ParseMode(s string) (Mode, error) {
	if m := Mode(s); m.Valid() {
		return m, nil
	}
	names := make([]string, 0, len(Modes()))
	for _, m := range Modes() {
		names = append(names, string(m))
	}
	return "", fmt.Errorf("%w %q: valid modes are %s", ErrInvalidMode, s, strings.Join(names, ", "))
}
