package e2e

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// uiHarness starts an mTLS gateway with the UI on, trusting proxies in
// trusted, and a runner named web-1.
func uiHarness(t *testing.T, trusted ...string) (*testharness.Harness, *testharness.Gateway) {
	t.Helper()
	h := testharness.New(t, testharness.Options{Gateway: func(c *gateway.Config) {
		c.UI = gateway.UIConfig{Enabled: true, Prefix: "/ui", TrustedProxies: trusted}
	}})
	gw := h.StartGateway(t)
	h.StartRunner(t, gw, "web-1")
	testharness.Eventually(t, 10*time.Second, "web-1 online", func() bool {
		r, err := h.Store.Runner(context.Background(), "web-1")
		return err == nil && r.Status == protocol.RunnerOnline
	})
	return h, gw
}

// uiGet sends a GET through c with headers, not following redirects.
func uiDo(t *testing.T, c *testharness.Client, method, u string, hdr map[string]string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	hc := *c.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, sb.String()
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestUIAccess: only a ui-proxy certificate with a user header reaches the
// pages; operator and runner certificates get 403, a ui-proxy without a
// user 401, and a client without a certificate no handshake at all.
func TestUIAccess(t *testing.T) {
	h, gw := uiHarness(t)
	proxy := h.Client(t, ca.ProfileUIProxy, "nginx")
	user := map[string]string{"X-Forwarded-User": "alice"}

	resp, body := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/runners", user, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "web-1") || !strings.Contains(body, "alice") {
		t.Fatalf("ui-proxy + user: %d\n%s", resp.StatusCode, body)
	}
	for _, hd := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"} {
		if resp.Header.Get(hd) == "" {
			t.Errorf("missing security header %s", hd)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	if resp, _ := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/runners", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("ui-proxy without a user: %d; want 401", resp.StatusCode)
	}
	if resp, _ := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/runners", map[string]string{"X-Forwarded-Email": "bob@example.com"}, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("ui-proxy with X-Forwarded-Email: %d; want 200", resp.StatusCode)
	}
	for _, profile := range []string{ca.ProfileOperator, ca.ProfileRunner, ca.ProfilePrometheus} {
		c := h.Client(t, profile, "x-"+profile)
		if resp, _ := uiDo(t, c, http.MethodGet, gw.APIURL+"/ui/runners", user, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s certificate: %d; want 403", profile, resp.StatusCode)
		}
	}
	if _, err := h.Anonymous(t).HTTP.Get(gw.APIURL + "/ui/runners"); err == nil {
		t.Error("a client without a certificate got an answer")
	}
	// The API is still the API: the ui-proxy may not list runners there.
	if status := proxy.Do(t, http.MethodGet, gw.APIURL+"/v1/runners", nil, nil); status != http.StatusForbidden {
		t.Errorf("ui-proxy on the operator API: %d; want 403", status)
	}
}

// TestUIForwardedHeaders: X-Forwarded-Prefix shapes links only from a
// trusted proxy, and a hostile prefix never reaches a link or a Location.
func TestUIForwardedHeaders(t *testing.T) {
	t.Run("untrusted peer", func(t *testing.T) {
		h, gw := uiHarness(t) // no trusted proxies
		proxy := h.Client(t, ca.ProfileUIProxy, "nginx")
		_, body := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/runners", map[string]string{"X-Forwarded-User": "alice",
			"X-Forwarded-Prefix": "/spoofed", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}, nil)
		if strings.Contains(body, "/spoofed") || !strings.Contains(body, `href="/ui/runners/web-1"`) {
			t.Errorf("spoofed prefix from an untrusted peer was used:\n%s", body)
		}
		// A spoofed X-Forwarded-Host does not widen the Origin check.
		_, tokPage := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/tokens", map[string]string{"X-Forwarded-User": "alice"}, nil)
		form := url.Values{"csrf": {csrf(t, tokPage)}, "name": {"spoof-1"}}
		resp, _ := uiDo(t, proxy, http.MethodPost, gw.APIURL+"/ui/tokens", map[string]string{"X-Forwarded-User": "alice",
			"X-Forwarded-Host": "evil.example", "Origin": "https://evil.example"}, form)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST with Origin = spoofed X-Forwarded-Host: %d; want 403", resp.StatusCode)
		}
	})
	t.Run("trusted peer", func(t *testing.T) {
		h, gw := uiHarness(t, "127.0.0.1/32")
		proxy := h.Client(t, ca.ProfileUIProxy, "nginx")
		hdr := map[string]string{"X-Forwarded-User": "alice", "X-Forwarded-Prefix": "/leash"}
		_, body := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/runners", hdr, nil)
		_, tokPage := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/tokens", hdr, nil)
		token := csrf(t, tokPage)
		if !strings.Contains(body, `href="/leash/runners/web-1"`) {
			t.Errorf("trusted prefix not used:\n%s", body)
		}
		for _, bad := range []string{"//evil.example", `/\evil.example`, "https://evil.example", "/a/../b", "/x\tevil", "/%2f%2fevil"} {
			hdr := map[string]string{"X-Forwarded-User": "alice", "X-Forwarded-Prefix": bad}
			_, body := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/runners", hdr, nil)
			if strings.Contains(body, "evil") || !strings.Contains(body, `href="/ui/runners/web-1"`) {
				t.Errorf("prefix %q reached the page", bad)
			}
			// A state change answers 303 to a Location below the prefix.
			hdr["Origin"] = "https://" + strings.TrimPrefix(gw.APIURL, "https://")
			tk, err := h.CA.CreateToken(context.Background(), ca.TokenRequest{Subject: "victim"})
			if err != nil {
				t.Fatal(err)
			}
			form := url.Values{"csrf": {token}, "id": {tk.ID}}
			resp, _ := uiDo(t, proxy, http.MethodPost, gw.APIURL+"/ui/tokens/revoke", hdr, form)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/ui/tokens?done=token-revoked" {
				t.Errorf("prefix %q: %d Location %q; want 303 to /ui/tokens?done=token-revoked", bad, resp.StatusCode, loc)
			}
		}
	})
}

func csrf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

// TestUICSRF: a POST without the token, with another user's token, with a
// foreign Origin or a cross-site Sec-Fetch-Site is refused and changes
// nothing; GET never changes state; the good one does, and is audited
// with the person's name.
func TestUICSRF(t *testing.T) {
	h, gw := uiHarness(t)
	proxy := h.Client(t, ca.ProfileUIProxy, "nginx")
	origin := "https://" + strings.TrimPrefix(gw.APIURL, "https://")
	alice := map[string]string{"X-Forwarded-User": "alice", "Origin": origin}
	_, page := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/tokens", alice, nil)
	token := csrf(t, page)
	_, bobPage := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/tokens", map[string]string{"X-Forwarded-User": "bob"}, nil)

	refused := []struct {
		name string
		hdr  map[string]string
		csrf string
	}{
		{"no token", alice, ""},
		{"wrong token", alice, "AAAA"},
		{"bob's token", alice, csrf(t, bobPage)},
		{"foreign origin", map[string]string{"X-Forwarded-User": "alice", "Origin": "https://evil.example"}, token},
		{"cross-site fetch", map[string]string{"X-Forwarded-User": "alice", "Sec-Fetch-Site": "cross-site"}, token},
		{"no origin at all", map[string]string{"X-Forwarded-User": "alice"}, token},
	}
	for _, c := range refused {
		resp, _ := uiDo(t, proxy, http.MethodPost, gw.APIURL+"/ui/tokens", c.hdr, url.Values{"csrf": {c.csrf}, "name": {"csrf-victim"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d; want 403", c.name, resp.StatusCode)
		}
	}
	if resp, _ := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/tokens?name=csrf-victim&csrf="+url.QueryEscape(token), alice, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET tokens: %d", resp.StatusCode)
	}
	if toks, err := h.CA.Tokens(context.Background(), ca.TokenQuery{Subject: "csrf-victim"}); err != nil || len(toks) != 0 {
		t.Fatalf("a refused request minted tokens: %+v %v", toks, err)
	}

	resp, body := uiDo(t, proxy, http.MethodPost, gw.APIURL+"/ui/tokens", alice, url.Values{"csrf": {token}, "name": {"db-2"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "LEASH_TOKEN") {
		t.Fatalf("create token: %d\n%s", resp.StatusCode, body)
	}
	toks, err := h.CA.Tokens(context.Background(), ca.TokenQuery{Subject: "db-2"})
	if err != nil || len(toks) != 1 || !strings.Contains(body, toks[0].ID) {
		t.Fatalf("tokens for db-2: %+v %v", toks, err)
	}
	// Regenerate: the old token is revoked, a new one minted.
	if resp, _ := uiDo(t, proxy, http.MethodPost, gw.APIURL+"/ui/tokens", alice, url.Values{"csrf": {token}, "name": {"db-2"}, "regenerate": {"1"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("regenerate: %d", resp.StatusCode)
	}
	toks, _ = h.CA.Tokens(context.Background(), ca.TokenQuery{Subject: "db-2"})
	states := map[ca.TokenState]int{}
	for _, tk := range toks {
		states[tk.State]++
	}
	if states[ca.TokenPending] != 1 || states[ca.TokenRevoked] != 1 {
		t.Errorf("after regenerate: %v", states)
	}
	rows, err := h.Store.AuditLog(context.Background(), store.AuditQuery{Action: "token.create", Target: "db-2"})
	if err != nil || len(rows) != 2 || rows[0].Actor != "ui:alice via leash://ui-proxy/nginx" {
		t.Errorf("audit rows: %+v %v", rows, err)
	}
}

// TestUIRevokeCert: revoking a runner's certificate on the certificates
// page puts it on the CRL, cuts the runner off (it goes offline) and is
// audited with the person's name.
func TestUIRevokeCert(t *testing.T) {
	h, gw := uiHarness(t)
	proxy := h.Client(t, ca.ProfileUIProxy, "nginx")
	origin := "https://" + strings.TrimPrefix(gw.APIURL, "https://")
	hdr := map[string]string{"X-Forwarded-User": "carol", "Origin": origin}
	rn, err := h.Store.Runner(context.Background(), "web-1")
	if err != nil {
		t.Fatal(err)
	}
	_, page := uiDo(t, proxy, http.MethodGet, gw.APIURL+"/ui/certs", hdr, nil)
	if !strings.Contains(page, rn.CertSerial) {
		t.Fatalf("certs page lacks web-1's serial %s", rn.CertSerial)
	}
	form := url.Values{"csrf": {csrf(t, page)}, "serial": {rn.CertSerial}, "reason": {"key-compromise"}}
	resp, _ := uiDo(t, proxy, http.MethodPost, gw.APIURL+"/ui/certs/revoke", hdr, form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/certs?done=revoked" {
		t.Fatalf("revoke: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if revoked, err := h.CA.IsRevoked(context.Background(), rn.CertSerial); err != nil || !revoked {
		t.Fatalf("serial %s revoked=%v %v", rn.CertSerial, revoked, err)
	}
	testharness.Eventually(t, 15*time.Second, "web-1 offline", func() bool {
		r, err := h.Store.Runner(context.Background(), "web-1")
		return err == nil && r.Status == protocol.RunnerOffline
	})
	rows, err := h.Store.AuditLog(context.Background(), store.AuditQuery{Action: "cert.revoke", Target: rn.CertSerial})
	if err != nil || len(rows) != 1 || rows[0].Actor != "ui:carol via leash://ui-proxy/nginx" {
		t.Errorf("audit rows: %+v %v", rows, err)
	}
	// The pages render with data in them.
	for _, p := range []string{"/ui/", "/ui/runners/web-1", "/ui/jobs", "/ui/audit", "/ui/crl"} {
		if resp, _ := uiDo(t, proxy, http.MethodGet, gw.APIURL+p, hdr, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
	}
}
