package domain

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		p, err := parsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestPrefixMatching(t *testing.T) {
	for _, tc := range []struct {
		prefix, addr string
		in           bool
	}{
		{"10.0.0.0/8", "10.1.2.3", true},
		{"10.0.0.0/8", "11.0.0.1", false},
		{"10.0.0.0/8", "::ffff:10.1.2.3", true}, // mapped counts as IPv4
		{"::ffff:10.0.0.0/104", "10.1.2.3", true},
		{"::ffff:10.0.0.0/104", "11.1.2.3", false},
		{"::ffff:0:0/96", "192.0.2.1", true},
		{"::/0", "192.0.2.1", false}, // all IPv6 is not all IPv4
		{"::/0", "2001:db8::1", true},
		{"2001:db8::/32", "2001:db8:1::1", true},
		{"2001:db8::/32", "2001:db9::1", false},
		{"2001:db8::/32", "[2001:db8::1]:443", true},
		{"2001:db8::1", "2001:db8::1", true},
		{"2001:db8::1", "2001:db8::2", false},
		{"fe80::/10", "[fe80::1%eth0]:80", true}, // zones are dropped
		{"192.0.2.7", "192.0.2.7:1234", true},
		{"192.0.2.7", "192.0.2.8", false},
		{"10.0.0.0/8", "not-an-ip", false},
	} {
		a, _ := parseHostAddr(tc.addr)
		if got := inPrefixes(prefixes(t, tc.prefix), a); got != tc.in {
			t.Errorf("%s contains %s: got %v, want %v", tc.prefix, tc.addr, got, tc.in)
		}
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []string{"127.0.0.1", "10.0.0.0/8", "fd00::/8"}
	for _, tc := range []struct {
		name, peer string
		xff        []string // X-Forwarded-For header lines
		want       string   // "" : unknown
	}{
		{"no header", "192.0.2.1:5000", nil, "192.0.2.1"},
		{"untrusted peer's header is ignored", "192.0.2.1:5000", []string{"10.9.9.9"}, "192.0.2.1"},
		{"untrusted peer claims trust", "192.0.2.1:5000", []string{"127.0.0.1"}, "192.0.2.1"},
		{"trusted peer, one hop", "127.0.0.1:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted peer, no header", "127.0.0.1:5000", nil, "127.0.0.1"},
		{"mapped trusted peer", "[::ffff:127.0.0.1]:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		// The client forged the left part; the trusted proxies appended
		// the right part.
		{"forged left part", "127.0.0.1:5000", []string{"1.1.1.1, 203.0.113.9, 10.0.0.5"}, "203.0.113.9"},
		{"chain over header lines", "127.0.0.1:5000", []string{"1.1.1.1", "203.0.113.9", "10.0.0.5, 10.0.0.6"}, "203.0.113.9"},
		{"forged garbage left of the client", "127.0.0.1:5000", []string{"<script>, 203.0.113.9"}, "203.0.113.9"},
		{"all trusted: left-most", "127.0.0.1:5000", []string{"10.0.0.1, 10.0.0.2"}, "10.0.0.1"},
		{"ipv6 chain", "[fd00::1]:443", []string{"2001:db8::9, fd00::2"}, "2001:db8::9"},
		{"bracketed ipv6 with port", "[fd00::1]:443", []string{"[2001:db8::9]:51000"}, "2001:db8::9"},
		{"ipv4 with port", "127.0.0.1:1", []string{"198.51.100.7:4711"}, "198.51.100.7"},
		{"mapped client", "127.0.0.1:1", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"spaces", "127.0.0.1:1", []string{"  198.51.100.7 ,10.0.0.1  "}, "198.51.100.7"},
		{"garbage written by a trusted hop", "127.0.0.1:1", []string{"198.51.100.7, unknown"}, ""},
		{"empty entry from a trusted hop", "127.0.0.1:1", []string{"198.51.100.7,"}, ""},
		{"peer without a port", "192.0.2.1", nil, "192.0.2.1"},
		{"peer unknown", "@", []string{"198.51.100.7"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.xff {
				h.Add("X-Forwarded-For", v)
			}
			peer, _ := parseHostAddr(tc.peer)
			got, problem := clientAddr(peer, h, prefixes(t, trusted...))
			if tc.want == "" {
				if got.IsValid() {
					t.Fatalf("got %s, want unknown", got)
				}
				return
			}
			if got.String() != tc.want || problem != "" {
				t.Fatalf("got %s (%s), want %s", got, problem, tc.want)
			}
		})
	}
}

func TestTransactionID(t *testing.T) {
	good := "abcDEF-123_x.y"
	for _, tc := range []struct {
		name     string
		in       []string
		trusted  bool
		keep     bool
		replaced bool
	}{
		{"none", nil, false, false, false},
		{"none, trusted", nil, true, false, false},
		{"valid from trusted", []string{good}, true, true, false},
		{"valid from untrusted", []string{good}, false, false, true},
		{"two values", []string{good, good}, true, false, true},
		{"too short", []string{"abc"}, true, false, true},
		{"too long", []string{strings.Repeat("a", 129)}, true, false, true},
		{"header injection", []string{"abcdefgh\r\nX-Evil: 1"}, true, false, true},
		{"spaces", []string{"abcd efgh"}, true, false, true},
		{"unicode", []string{"abcdéfgh"}, true, false, true},
		{"log forging", []string{`abcdefgh" reason="ok`}, true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.in {
				h.Add(HeaderTransactionID, v)
			}
			id, replaced := transactionID(h, tc.trusted)
			if replaced != tc.replaced {
				t.Errorf("replaced = %v", replaced)
			}
			if tc.keep != (id == good) {
				t.Errorf("id = %q, keep %v", id, tc.keep)
			}
			if !validTransactionID(id) {
				t.Errorf("generated id %q is not valid", id)
			}
		})
	}
	a, _ := transactionID(http.Header{}, false)
	b, _ := transactionID(http.Header{}, false)
	if a == b {
		t.Fatal("two generated ids are equal")
	}
}
