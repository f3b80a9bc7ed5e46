package domain

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// do serves one request from peer through h.
func do(h http.Handler, peer string, mod func(*http.Request)) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "http://app.example/path?q=1", nil)
	r.RemoteAddr = peer
	if mod != nil {
		mod(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func newLive(t *testing.T, p Policy, next http.Handler, opts ...Option) *Live {
	t.Helper()
	l, err := NewLive(p, next, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestHandlerCIDR(t *testing.T) {
	p := Policy{AllowCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"}}
	for _, tc := range []struct {
		peer string
		want int
	}{
		{"10.1.2.3:1000", 200},
		{"[::ffff:10.1.2.3]:1000", 200},
		{"192.0.2.1:1000", 403},
		{"[::ffff:192.0.2.1]:1000", 403},
		{"[2001:db8::5]:1000", 200},
		{"[2001:db9::5]:1000", 403},
		{"[::1]:1000", 403},
		{"not an address", 403},
	} {
		for _, stealth := range []bool{false, true} {
			p.Stealth = stealth
			sink := &logSink{}
			h := newLive(t, p, &okHandler{}, WithLogger(sink.logger()), WithDomain("app.example"))
			w := do(h, tc.peer, nil)
			want := tc.want
			if stealth && want == 403 {
				want = 404
			}
			if w.Code != want {
				t.Errorf("%s stealth=%v: status %d, want %d", tc.peer, stealth, w.Code, want)
			}
			if want == 404 && w.Body.String() != "404 page not found\n" {
				t.Errorf("stealth body %q differs from http.NotFound", w.Body)
			}
			if tc.want == 403 {
				recs := sink.records(t, LogRefused)
				if len(recs) != 1 || recs[0]["reason"] != string(ReasonCIDR) || recs[0]["domain"] != "app.example" ||
					recs[0]["transaction_id"] != w.Header().Get(HeaderTransactionID) || recs[0]["client_ip"] == nil ||
					recs[0]["stealth"] != stealth {
					t.Errorf("%s: log %v", tc.peer, recs)
				}
			}
		}
	}
}

func TestHandlerForwarders(t *testing.T) {
	p := Policy{AllowCIDRs: []string{"203.0.113.0/24"}, TrustedForwarders: []string{"127.0.0.1", "10.0.0.0/8"}}
	for _, tc := range []struct {
		name, peer string
		xff        string
		want       int
		client     string
		keepXFF    bool
	}{
		{"spoof from untrusted peer", "192.0.2.1:1", "203.0.113.5", 403, "", false},
		{"untrusted but allowed peer loses the spoofed header", "203.0.113.9:1", "127.0.0.1", 200, "203.0.113.9", false},
		{"trusted proxy", "127.0.0.1:1", "203.0.113.5", 200, "203.0.113.5", true},
		{"trusted chain", "127.0.0.1:1", "203.0.113.5, 10.0.0.1", 200, "203.0.113.5", true},
		{"forged allowed address left of the real client", "127.0.0.1:1", "203.0.113.5, 192.0.2.1", 403, "", false},
		{"garbage from a trusted hop", "127.0.0.1:1", "203.0.113.5, unknown", 403, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := &okHandler{}
			sink := &logSink{}
			h := newLive(t, p, next, WithLogger(sink.logger()))
			w := do(h, tc.peer, func(r *http.Request) {
				r.Header.Set("X-Forwarded-For", tc.xff)
				r.Header.Set("X-Real-Ip", "203.0.113.1")
				r.Header.Set("Forwarded", "for=203.0.113.1")
			})
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
			if tc.want != 200 {
				if next.seen() != nil {
					t.Fatal("next ran")
				}
				return
			}
			r := next.seen()
			if got := ClientIP(r.Context()).String(); got != tc.client {
				t.Errorf("ClientIP = %s, want %s", got, tc.client)
			}
			for _, name := range clientAddrHeaders {
				if (r.Header.Get(name) != "") != tc.keepXFF {
					t.Errorf("%s reached next: %q (keep %v)", name, r.Header.Get(name), tc.keepXFF)
				}
			}
		})
	}
}

func TestHandlerClientUnknownLogged(t *testing.T) {
	sink := &logSink{}
	h := newLive(t, Policy{AllowCIDRs: []string{"0.0.0.0/0"}, TrustedForwarders: []string{"127.0.0.1"}}, &okHandler{},
		WithLogger(sink.logger()))
	if w := do(h, "127.0.0.1:1", func(r *http.Request) { r.Header.Set("X-Forwarded-For", "1.2.3.4, _") }); w.Code != 403 {
		t.Fatalf("status %d", w.Code)
	}
	recs := sink.records(t, LogRefused)
	if len(recs) != 1 || recs[0]["reason"] != string(ReasonClientUnknown) || recs[0]["client_ip"] != "unknown" {
		t.Fatalf("log %v", recs)
	}
}

func TestHandlerTimeRanges(t *testing.T) {
	clock := newFakeClock(at(t, "Mon 2024-01-01 09:00:00"))
	sink := &logSink{}
	h := newLive(t, Policy{TimeRanges: []string{"Mon-Fri 08:00-18:00", "Fri 22:00-02:00"}}, &okHandler{},
		WithClock(clock.now), WithLogger(sink.logger()))
	for _, tc := range []struct {
		at   string
		want int
	}{
		{"Mon 2024-01-01 09:00:00", 200},
		{"Mon 2024-01-01 18:00:00", 403},
		{"Mon 2024-01-01 07:59:59", 403},
		{"Fri 2024-01-05 23:00:00", 200},
		{"Sat 2024-01-06 01:59:59", 200},
		{"Sat 2024-01-06 02:00:00", 403},
		{"Sun 2024-01-07 12:00:00", 403},
	} {
		clock.set(at(t, tc.at))
		if w := do(h, "192.0.2.1:1", nil); w.Code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.at, w.Code, tc.want)
		}
	}
	for _, rec := range sink.records(t, LogRefused) {
		if rec["reason"] != string(ReasonTime) {
			t.Errorf("log %v", rec)
		}
	}
}

func TestHandlerAuth(t *testing.T) {
	creds := []Credential{
		{"alice", bcryptHash(t, "alice-pw", "$2a$")},
		{"bob", bcryptHash(t, "bob-pw", "$2b$")},
		{"carol", bcryptHash(t, "carol-pw", "$2y$")},
		{"dave", shaHello},
	}
	basic := func(u, p string) func(*http.Request) { return func(r *http.Request) { r.SetBasicAuth(u, p) } }
	for _, tc := range []struct {
		name   string
		mod    func(*http.Request)
		want   int
		user   string // logged in
		reason Reason
	}{
		{"bcrypt 2a", basic("alice", "alice-pw"), 200, "alice", ""},
		{"bcrypt 2b", basic("bob", "bob-pw"), 200, "bob", ""},
		{"bcrypt 2y", basic("carol", "carol-pw"), 200, "carol", ""},
		{"sha512-crypt", basic("dave", "Hello world!"), 200, "dave", ""},
		{"wrong password", basic("alice", "bob-pw"), 401, "", ReasonAuthWrongPassword},
		{"password of another user", basic("bob", "alice-pw"), 401, "", ReasonAuthWrongPassword},
		{"user case differs", basic("Alice", "alice-pw"), 401, "", ReasonAuthUnknownUser},
		{"user prefix", basic("alic", "alice-pw"), 401, "", ReasonAuthUnknownUser},
		{"unknown user", basic("mallory", "alice-pw"), 401, "", ReasonAuthUnknownUser},
		{"empty user and password", basic("", ""), 401, "", ReasonAuthUnknownUser},
		{"missing", nil, 401, "", ReasonAuthMissing},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, 401, "", ReasonAuthMalformed},
		{"bad base64", func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") }, 401, "", ReasonAuthMalformed},
		{"two headers", func(r *http.Request) {
			r.SetBasicAuth("alice", "alice-pw")
			r.Header.Add("Authorization", r.Header.Get("Authorization"))
		}, 401, "", ReasonAuthMalformed},
		{"huge password", basic("dave", strings.Repeat("x", 100_000)), 401, "", ReasonAuthTooLong},
	} {
		for _, stealth := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stealth=%v", tc.name, stealth), func(t *testing.T) {
				next := &okHandler{}
				sink := &logSink{}
				h := newLive(t, Policy{Credentials: creds, Realm: "Staff only", Stealth: stealth}, next,
					WithLogger(sink.logger()), WithDomain("app.example"))
				w := do(h, "192.0.2.1:1", tc.mod)
				want := tc.want
				if stealth && want == 401 {
					want = 404
				}
				if w.Code != want {
					t.Fatalf("stealth=%v: status %d, want %d", stealth, w.Code, want)
				}
				challenge := w.Header().Get("WWW-Authenticate")
				switch {
				case want == 401 && challenge != `Basic realm="Staff only", charset="UTF-8"`:
					t.Errorf("challenge %q", challenge)
				case want != 401 && challenge != "":
					t.Errorf("challenge %q sent with %d", challenge, want)
				}
				if want == 200 {
					r := next.seen()
					if r.Header.Get("Authorization") != "" {
						t.Error("the Authorization header reached next")
					}
					if User(r.Context()) != tc.user {
						t.Errorf("User = %q", User(r.Context()))
					}
					return
				}
				if next.seen() != nil {
					t.Fatal("next ran")
				}
				recs := sink.records(t, LogRefused)
				if len(recs) != 1 || recs[0]["reason"] != string(tc.reason) {
					t.Fatalf("log %v", recs)
				}
				// Only a configured user name is logged, never a password.
				_, loggedUser := recs[0]["user"]
				if loggedUser != (tc.reason == ReasonAuthWrongPassword) || strings.Contains(sink.buf.String(), "-pw") {
					t.Errorf("log shows too much: %v", recs[0])
				}
			})
		}
	}
}

func TestHandlerAuthDefaultsAndPassThrough(t *testing.T) {
	// Without credentials the app's own Authorization header passes.
	next := &okHandler{}
	h := newLive(t, Policy{}, next)
	if w := do(h, "192.0.2.1:1", func(r *http.Request) { r.Header.Set("Authorization", "Bearer app-token") }); w.Code != 200 ||
		next.seen().Header.Get("Authorization") != "Bearer app-token" {
		t.Fatalf("status %d, Authorization %q", w.Code, next.seen().Header.Get("Authorization"))
	}
	// The realm defaults to the domain, then to "leash".
	creds := []Credential{{"dave", shaHello}}
	for domain, want := range map[string]string{"app.example": "app.example", "": "leash", `we"ird`: "leash"} {
		h := newLive(t, Policy{Credentials: creds}, next, WithDomain(domain))
		if got := do(h, "192.0.2.1:1", nil).Header().Get("WWW-Authenticate"); got != `Basic realm="`+want+`", charset="UTF-8"` {
			t.Errorf("domain %q: challenge %q", domain, got)
		}
	}
}

// A successful login is remembered (no second hash); a wrong password
// never is.
func TestHandlerAuthCache(t *testing.T) {
	hashes := 0
	c, err := compile(Policy{Credentials: []Credential{{"dave", shaHello}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	inner := c.creds[0].verify
	c.creds[0].verify = func(pw []byte) bool { hashes++; return inner(pw) }
	req := func(pw string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth("dave", pw)
		return r
	}
	for range 3 {
		if _, why := c.authenticate(req("Hello world!")); why != "" {
			t.Fatal(why)
		}
		if _, why := c.authenticate(req("wrong")); why != ReasonAuthWrongPassword {
			t.Fatal(why)
		}
	}
	if hashes != 4 { // one success, three failures
		t.Fatalf("%d hashes", hashes)
	}
	// An unknown user still costs a hash.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth("nobody", "x")
	if _, why := c.authenticate(r); why != ReasonAuthUnknownUser || hashes != 5 {
		t.Fatalf("%s after %d hashes", why, hashes)
	}
}

func TestHandlerTransactionID(t *testing.T) {
	const incoming = "upstream-id-0001"
	p := Policy{TrustedForwarders: []string{"127.0.0.1"}, AllowCIDRs: []string{"127.0.0.1", "192.0.2.0/24"}}
	for _, tc := range []struct {
		name, peer, in string
		keep           bool
	}{
		{"generated", "192.0.2.1:1", "", false},
		{"untrusted peer's id replaced", "192.0.2.1:1", incoming, false},
		{"trusted forwarder's id kept", "127.0.0.1:1", incoming, true},
		{"garbage from a trusted forwarder replaced", "127.0.0.1:1", "bad id\r\nx", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := &okHandler{}
			h := newLive(t, p, next)
			w := do(h, tc.peer, func(r *http.Request) {
				if tc.in != "" {
					r.Header.Set(HeaderTransactionID, tc.in)
				}
			})
			got := w.Header().Get(HeaderTransactionID)
			if !validTransactionID(got) || (got == incoming) != tc.keep {
				t.Fatalf("response id %q", got)
			}
			r := next.seen()
			if r.Header.Get(HeaderTransactionID) != got || TransactionID(r.Context()) != got {
				t.Fatalf("next saw %q / %q, response %q", r.Header.Get(HeaderTransactionID), TransactionID(r.Context()), got)
			}
		})
	}
	// Refusals carry an id too, and two requests get different ones.
	h := newLive(t, p, &okHandler{})
	a := do(h, "198.51.100.1:1", nil).Header().Get(HeaderTransactionID)
	b := do(h, "198.51.100.1:1", nil).Header().Get(HeaderTransactionID)
	if !validTransactionID(a) || a == b {
		t.Fatalf("refusal ids %q %q", a, b)
	}
}

func TestNewLiveErrors(t *testing.T) {
	if _, err := NewLive(Policy{}, nil); err == nil {
		t.Fatal("nil next accepted")
	}
	if _, err := (Policy{MaxConcurrent: -1}).Handler(&okHandler{}); err == nil {
		t.Fatal("invalid policy accepted")
	}
	l := newLive(t, Policy{ReadTimeout: Duration(time.Second)}, &okHandler{}, WithLogger(nil), WithClock(nil))
	if l.Timeouts().Read != time.Second {
		t.Fatal("timeouts not exposed")
	}
	if w := do(l, "192.0.2.1:1", nil); w.Code != 200 {
		t.Fatalf("nil options: status %d", w.Code)
	}
}

// A stealth refusal looks like NotFound for an unknown domain: same
// status, body and header names.
func TestStealthLooksLikeUnknownDomain(t *testing.T) {
	unknown := httptest.NewRecorder()
	NotFound(unknown, httptest.NewRequest(http.MethodGet, "/path", nil))
	names := func(h http.Header) string {
		var out []string
		for k := range h {
			out = append(out, k)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	for name, p := range map[string]Policy{
		"cidr": {AllowCIDRs: []string{"10.0.0.0/8"}, Stealth: true},
		"time": {TimeRanges: []string{"Mon 00:00-00:01"}, Stealth: true},
		"auth": {Credentials: []Credential{{"dave", shaHello}}, Stealth: true},
	} {
		clock := newFakeClock(at(t, "Tue 2024-01-02 12:00:00"))
		w := do(newLive(t, p, &okHandler{}, WithClock(clock.now)), "192.0.2.1:1", func(r *http.Request) { r.SetBasicAuth("dave", "nope") })
		if w.Code != unknown.Code || w.Body.String() != unknown.Body.String() || names(w.Header()) != names(unknown.Header()) {
			t.Errorf("%s: %d %q %v, unknown domain: %d %q %v", name, w.Code, w.Body, w.Header(), unknown.Code, unknown.Body, unknown.Header())
		}
	}
}
