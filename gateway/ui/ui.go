package ui

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	leashtls "github.com/leashpki/leash/tls"
)

// MountPath is where the gateway mounts the UI on its API listener.
const MountPath = "/ui"

// DefaultPrefix is the prefix links use when no trusted proxy names one.
const DefaultPrefix = MountPath

// Header names set by the proxy.
const (
	HeaderUser   = "X-Forwarded-User"
	HeaderEmail  = "X-Forwarded-Email"
	HeaderPrefix = "X-Forwarded-Prefix"
	HeaderProto  = "X-Forwarded-Proto"
	HeaderHost   = "X-Forwarded-Host"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure New.
type Options struct {
	Backend Backend
	Log     *slog.Logger
	// Prefix is the path prefix of links when no trusted X-Forwarded-Prefix
	// is given; default DefaultPrefix. It must pass ValidPrefix.
	Prefix string
	// TrustedProxies are the TCP peers whose X-Forwarded-Proto, -Host and
	// -Prefix are honoured.
	TrustedProxies []netip.Prefix
	// CSRFKey keys the CSRF token HMAC; at least 32 bytes, shared by the
	// replicas behind one proxy.
	CSRFKey []byte
	Install Install
	// Poll is how often the event stream looks for changes (default 1s).
	Poll time.Duration
	Now  func() time.Time
	// Done, when closed, ends the event streams (the gateway is stopping;
	// http.Server.Shutdown does not end running requests).
	Done <-chan struct{}
}

// Handler serves the UI. Mount it with http.StripPrefix(MountPath, h).
type Handler struct {
	o     Options
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New checks o and parses the templates.
func New(o Options) (*Handler, error) {
	if o.Backend == nil {
		return nil, errors.New("ui: a backend is required")
	}
	if len(o.CSRFKey) < 32 {
		return nil, errors.New("ui: the CSRF key must be at least 32 bytes")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := ValidPrefix(o.Prefix); err != nil {
		return nil, fmt.Errorf("ui prefix: %w", err)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := &Handler{o: o, pages: map[string]*template.Template{}}
	for _, name := range []string{"overview", "runners", "runner", "certs", "tokens", "jobs", "audit", "error"} {
		t, err := template.New("layout.html").Funcs(funcs(o.Now)).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui template %s: %w", name, err)
		}
		h.pages[name] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", h.overview)
	mux.HandleFunc("GET /runners", h.runners)
	mux.HandleFunc("GET /runners/{id}", h.runner)
	mux.HandleFunc("POST /runners/{id}/revoke", h.revokeRunner)
	mux.HandleFunc("GET /certs", h.certs)
	mux.HandleFunc("POST /certs/revoke", h.revokeCert)
	mux.HandleFunc("GET /crl", h.crl)
	mux.HandleFunc("GET /tokens", h.tokens)
	mux.HandleFunc("POST /tokens", h.createToken)
	mux.HandleFunc("POST /tokens/revoke", h.revokeToken)
	mux.HandleFunc("GET /jobs", h.jobs)
	mux.HandleFunc("GET /audit", h.audit)
	mux.HandleFunc("GET /events", h.events)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusNotFound, "No such page.")
	})
	h.mux = mux
	return h, nil
}

// request is what every handler knows about the caller.
type request struct {
	user   string // the person, from the proxy
	proxy  leashtls.Identity
	prefix string // validated link prefix, no trailing slash
	origin string // scheme://host the browser sees
}

func (rq request) actor() string { return "ui:" + rq.user + " via " + rq.proxy.String() }

type ctxKey struct{}

// ServeHTTP authenticates the proxy and the person, sets the security
// headers and routes. r.URL.Path is relative to the mount path.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin") // no-referrer would make browsers send Origin: null on form posts
	hd.Set("Cache-Control", "no-store")
	if r.TLS == nil {
		http.Error(w, "the UI needs a TLS connection from the ui-proxy", http.StatusForbidden)
		return
	}
	id, err := leashtls.PeerIdentity(*r.TLS)
	if err != nil || id.Role != leashtls.RoleUIProxy {
		h.o.Log.Info("ui request refused", "peer", r.RemoteAddr, "identity", id.String(), "err", err)
		http.Error(w, "the UI is served only to the ui-proxy; operators use the leash CLI", http.StatusForbidden)
		return
	}
	user, ok := userFrom(r)
	if !ok {
		h.o.Log.Info("ui request without a user", "proxy", id.String())
		http.Error(w, "the proxy named no user (X-Forwarded-User or X-Forwarded-Email)", http.StatusUnauthorized)
		return
	}
	rq := request{user: user, proxy: id}
	rq.prefix, rq.origin = h.forwarded(r)
	if r.URL.Path == "" {
		r.URL.Path = "/"
	}
	h.mux.ServeHTTP(w, r.WithContext(withRequest(r.Context(), rq)))
}

// userFrom reads the person's name from the proxy headers: printable,
// at most 128 bytes.
func userFrom(r *http.Request) (string, bool) {
	for _, name := range []string{HeaderUser, HeaderEmail} {
		v := strings.TrimSpace(r.Header.Get(name))
		if v == "" || len(v) > 128 {
			continue
		}
		if strings.IndexFunc(v, func(c rune) bool { return c < 0x20 || c == 0x7f }) >= 0 {
			continue
		}
		return v, true
	}
	return "", false
}

// forwarded works out the link prefix and the browser's origin, trusting
// X-Forwarded-* only from the trusted proxies.
func (h *Handler) forwarded(r *http.Request) (prefix, origin string) {
	prefix, origin = h.o.Prefix, "https://"+r.Host
	if !h.trusted(r.RemoteAddr) {
		return prefix, origin
	}
	if p := r.Header.Get(HeaderPrefix); p != "" {
		p = strings.TrimSuffix(p, "/")
		if p == "" {
			prefix = ""
		} else if err := ValidPrefix(p); err != nil {
			h.o.Log.Warn("ignoring X-Forwarded-Prefix", "value", fmt.Sprintf("%q", r.Header.Get(HeaderPrefix)), "err", err)
		} else {
			prefix = p
		}
	}
	proto, host := "https", r.Host
	if v := r.Header.Get(HeaderProto); v == "http" || v == "https" {
		proto = v
	}
	if v := r.Header.Get(HeaderHost); v != "" && validHost(v) {
		host = v
	}
	return strings.TrimSuffix(prefix, "/"), proto + "://" + host
}

func (h *Handler) trusted(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	for _, p := range h.o.TrustedProxies {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// validHost accepts host[:port] made of letters, digits, '.', '-', ':',
// '[' and ']'.
func validHost(s string) bool {
	if len(s) > 255 {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c)
		if !ok {
			return false
		}
	}
	return true
}

// ValidPrefix checks a link prefix: an absolute path starting with a
// single "/", without "//", "\", "..", a scheme, query, fragment or
// control characters. "/" alone is valid (the root).
func ValidPrefix(p string) error {
	switch {
	case p == "":
		return errors.New("empty")
	case len(p) > 200:
		return errors.New("longer than 200 characters")
	case p[0] != '/':
		return fmt.Errorf("%q does not start with /", p)
	case strings.Contains(p, "//"):
		return fmt.Errorf("%q contains a dot-dot", p)
	case strings.Contains(p, `\`):
		return fmt.Errorf("%q contains a backslash", p)
	case strings.Contains(p, ".."):
		return fmt.Errorf("%q contains a dot-dot", p)
	case strings.ContainsAny(p, ":?#%@"):
		return fmt.Errorf("%q contains one of : ? # %% @", p)
	}
	for _, c := range p {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/-._~", c)
		if !ok {
			return fmt.Errorf("%q: character %q is not allowed", p, c)
		}
	}
	return nil
}
