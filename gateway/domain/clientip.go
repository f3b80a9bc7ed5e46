package domain

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// HeaderTransactionID carries the id that ties a request's log lines
// together across the gateway, the tunnel and the app.
const HeaderTransactionID = "X-Transaction-Id"

// Headers a client could use to claim another address. An untrusted peer's
// copies never reach next.
var clientAddrHeaders = []string{"X-Forwarded-For", "Forwarded", "X-Real-Ip"}

// parsePrefix reads a CIDR or a bare address (one host). An IPv4-mapped
// IPv6 prefix of /96 or longer becomes the IPv4 prefix it covers, because
// client addresses are compared unmapped; any other IPv6 prefix (::/0 too)
// matches IPv6 clients only. Host bits must be zero: "10.0.0.1/8" is more
// likely a typo than a wish.
func parsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, err
		}
		if p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%q has host bits set: did you mean %s?", s, p.Masked())
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p, nil
}

// inPrefixes reports whether a (unmapped, valid) is inside one of ps.
func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// normalAddr drops a zone and unmaps IPv4-mapped IPv6.
func normalAddr(a netip.Addr) netip.Addr { return a.WithZone("").Unmap() }

// parseHostAddr reads an address as RemoteAddr and X-Forwarded-For entries
// write it: "ip", "ip:port", "[ipv6]" or "[ipv6]:port".
func parseHostAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalAddr(ap.Addr()), true
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return normalAddr(a), true
	}
	return netip.Addr{}, false
}

// clientAddr resolves the client's address. Only a peer inside trusted
// makes X-Forwarded-For count; then, reading the chain right to left (the
// order forwarders append in), the first address that is not a trusted
// forwarder is the client. A chain of nothing but trusted forwarders names
// its left-most entry; an empty chain leaves the peer. An entry that does
// not parse ends the walk with no address (problem says why), because
// nothing left of it can be attributed to anyone.
func clientAddr(peer netip.Addr, h http.Header, trusted []netip.Prefix) (client netip.Addr, problem string) {
	if !inPrefixes(trusted, peer) {
		return peer, ""
	}
	var chain []string
	for _, v := range h.Values("X-Forwarded-For") {
		chain = append(chain, strings.Split(v, ",")...)
	}
	client = peer
	for i := len(chain) - 1; i >= 0; i-- {
		a, ok := parseHostAddr(chain[i])
		if !ok {
			return netip.Addr{}, "unparseable X-Forwarded-For entry from a trusted forwarder"
		}
		client = a
		if !inPrefixes(trusted, a) {
			break
		}
	}
	return client, ""
}

// Transaction ids: 8 to 128 characters of letters, digits, '.', '_', '-'.
const (
	txMin = 8
	txMax = 128
)

func validTransactionID(s string) bool {
	if len(s) < txMin || len(s) > txMax {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// transactionID keeps a single, well-formed incoming id from a trusted
// forwarder and otherwise makes a random one (128 bits, base32). replaced
// reports that an incoming id was dropped.
func transactionID(h http.Header, trustedPeer bool) (id string, replaced bool) {
	in := h.Values(HeaderTransactionID)
	if trustedPeer && len(in) == 1 && validTransactionID(in[0]) {
		return in[0], false
	}
	return rand.Text(), len(in) > 0
}
