package dockerproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"
)

// Proxy is an http.Handler that forwards the requests its policy allows
// to a Docker Engine's unix socket and refuses the rest. See the package
// comment for the policy.
type Proxy struct {
	cfg       Config
	routes    []route
	log       *slog.Logger
	transport *http.Transport
	rp        *httputil.ReverseProxy
	client    *http.Client // for Discover, through the same transport
}

// Option configures a Proxy.
type Option func(*Proxy)

// WithLogger sets the logger refusals and engine errors are logged to
// (default: none).
func WithLogger(l *slog.Logger) Option {
	return func(p *Proxy) {
		if l != nil {
			p.log = l
		}
	}
}

// New returns a Proxy for cfg. It reports every problem with cfg at once,
// wrapped in ErrConfig; an AllowedWrites entry that is not a safe write
// is also ErrUnsafeWrite. It does not dial the engine.
func New(cfg Config, opts ...Option) (*Proxy, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Socket == "" {
		cfg.Socket = DefaultSocket
	}
	p := &Proxy{cfg: cfg, routes: cfg.routes(), log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(p)
	}
	socket := cfg.Socket
	p.transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression:  true, // answers to redact must arrive as JSON
		MaxIdleConns:        8,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
	}
	p.client = &http.Client{Transport: p.transport}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p.transport,
		FlushInterval:  -1, // stream /events and followed logs as they come
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.engineError,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// CloseIdleConnections closes the proxy's idle connections to the engine.
func (p *Proxy) CloseIdleConnections() { p.transport.CloseIdleConnections() }

type decisionKey struct{}

// ServeHTTP forwards r if the policy allows it and answers 403 otherwise.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, rf := decide(p.routes, p.cfg.AllowLogs, r)
	if rf != nil {
		p.log.Warn("docker request refused", "method", r.Method, "target", shorten(target(r)),
			"reason", rf.reason, "remote", r.RemoteAddr)
		writeError(w, http.StatusForbidden, fmt.Sprintf("leash docker proxy: %s %s refused: %s",
			r.Method, strconv.Quote(shorten(target(r))), rf.reason))
		return
	}
	p.log.Debug("docker request", "method", r.Method, "path", d.path)
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), decisionKey{}, &d)))
}

// rewrite turns the allowed request into the one sent to the engine: the
// canonical path and query, Host docker, no body, no Accept-Encoding.
// ReverseProxy has already dropped the hop-by-hop and X-Forwarded headers.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	d := pr.In.Context().Value(decisionKey{}).(*decision)
	pr.Out.URL = &url.URL{Scheme: "http", Host: "docker", Path: d.path, RawQuery: d.query}
	pr.Out.Host = "docker"
	pr.Out.Body, pr.Out.ContentLength = http.NoBody, 0
	pr.Out.Header.Del("Accept-Encoding")
}

// modifyResponse refuses protocol switches and redacts answers that carry
// secrets.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return errors.New("the engine switched protocols, which no allowed request asks for")
	}
	d, _ := resp.Request.Context().Value(decisionKey{}).(*decision)
	if d == nil {
		return errors.New("no policy decision for the answer")
	}
	if d.route.rewrite == nil || resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
		return nil
	}
	return rewriteJSON(resp, d.route.rewrite, maxRewrite)
}

// engineError answers 502 when the engine could not be reached or its
// answer could not be passed on.
func (p *Proxy) engineError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		p.log.Debug("docker request ended by the client", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		p.log.Warn("docker engine error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, http.StatusBadGateway, "leash docker proxy: "+err.Error())
}

// writeError answers in Docker's error shape, which the docker CLI prints
// as "Error response from daemon: <message>".
func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// target returns the request target as received.
func target(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// shorten bounds a client-chosen string before it is logged or echoed.
func shorten(s string) string {
	const limit = 200
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
