package runner

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Route is one runner-side rule of an HTTP domain: requests that match its
// methods and path go to Target. Routes are tried in order; the first
// match wins, and a request no route matches gets 404.
type Route struct {
	Target  string   `yaml:"target"`  // http://127.0.0.1:8000, https://…, unix:///run/app.sock
	Methods []string `yaml:"methods"` // empty: any
	Path    string   `yaml:"path"`    // regular expression on the URL path; empty: any
	Host    string   `yaml:"host"`    // Host header sent to the target; empty: the public name the client asked for
	CA      string   `yaml:"ca"`      // PEM bundle verifying an https target; empty: system roots
}

func (r Route) validate() error {
	var errs []error
	u, err := url.Parse(r.Target)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("target %q: %w", r.Target, err))
	case u.Scheme == "unix":
		if u.Path == "" {
			errs = append(errs, fmt.Errorf("target %q: unix targets need a socket path (unix:///run/app.sock)", r.Target))
		}
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		errs = append(errs, fmt.Errorf("target %q: want http://host:port, https://host:port or unix:///path", r.Target))
	}
	if _, err := regexp.Compile(r.Path); err != nil {
		errs = append(errs, fmt.Errorf("path %q: %w", r.Path, err))
	}
	for _, m := range r.Methods {
		if m == "" || strings.ToUpper(m) != m {
			errs = append(errs, fmt.Errorf("method %q: use upper-case HTTP methods", m))
		}
	}
	if r.CA != "" && (u == nil || u.Scheme != "https") {
		errs = append(errs, errors.New("ca applies to https targets only"))
	}
	return errors.Join(errs...)
}

// compiledRoute is a Route ready to serve.
type compiledRoute struct {
	Route
	path  *regexp.Regexp
	proxy *httputil.ReverseProxy
}

// domainRouter serves one HTTP domain on the runner side.
type domainRouter struct {
	name   string
	routes []compiledRoute
	// passThrough is set when the domain is one route that takes every
	// request to a plain-HTTP target as it comes: no methods, no path, no
	// Host override. Then nothing on the runner needs to read the
	// requests, and a stream is spliced to a connection to the target
	// (network, address) instead of being served and proxied again.
	passThrough *[2]string
}

func compileDomain(name string, routes []Route, buffers httputil.BufferPool) (*domainRouter, error) {
	d := &domainRouter{name: name}
	if len(routes) == 1 {
		d.passThrough = passThroughTarget(routes[0])
	}
	for i, r := range routes {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("domains.%s[%d]: %w", name, i, err)
		}
		re, _ := regexp.Compile(r.Path)
		proxy, err := reverseProxy(r, buffers)
		if err != nil {
			return nil, fmt.Errorf("domains.%s[%d]: %w", name, i, err)
		}
		d.routes = append(d.routes, compiledRoute{Route: r, path: re, proxy: proxy})
	}
	return d, nil
}

func (d *domainRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for _, rt := range d.routes {
		if len(rt.Methods) > 0 && !slices.Contains(rt.Methods, r.Method) {
			continue
		}
		if !rt.path.MatchString(r.URL.Path) {
			continue
		}
		rt.proxy.ServeHTTP(w, r)
		return
	}
	http.Error(w, "no route on this runner for "+r.Method+" "+r.URL.Path, http.StatusNotFound)
}

// reverseProxy forwards to one target, keeping the client's request as is
// apart from the Host header and hop-by-hop headers. WebSocket upgrades
// and server-sent events pass through (ReverseProxy flushes
// text/event-stream at once).
func reverseProxy(r Route, buffers httputil.BufferPool) (*httputil.ReverseProxy, error) {
	u, err := url.Parse(r.Target)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext, TLSHandshakeTimeout: 10 * time.Second}
	dest := *u
	if u.Scheme == "unix" {
		sock := u.Path
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "unix", sock)
		}
		dest = url.URL{Scheme: "http", Host: "localhost"}
	}
	if r.CA != "" {
		pem, err := os.ReadFile(r.CA)
		if err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca %s: no PEM certificates", r.CA)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	host := r.Host
	return &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: buffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&dest)
			pr.Out.Host = pr.In.Host // the application sees its public name
			if host != "" {
				pr.Out.Host = host
			}
			// The gateway set X-Forwarded-* from what it verified; keep them.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.Out.Header["X-Forwarded-Host"] = pr.In.Header["X-Forwarded-Host"]
			pr.Out.Header["X-Forwarded-Proto"] = pr.In.Header["X-Forwarded-Proto"]
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "the runner could not reach the application: "+err.Error(), http.StatusBadGateway)
		},
	}, nil
}

// passThroughTarget returns the (network, address) to splice streams to
// when r takes every request unchanged to a plain-HTTP target, else nil.
// The gateway has already removed hop-by-hop headers and set
// X-Forwarded-*, which the proxied path would also pass on as they are.
func passThroughTarget(r Route) *[2]string {
	if len(r.Methods) > 0 || r.Path != "" || r.Host != "" {
		return nil
	}
	u, err := url.Parse(r.Target)
	if err != nil || u.RawQuery != "" {
		return nil
	}
	switch {
	case u.Scheme == "unix" && u.Path != "":
		return &[2]string{"unix", u.Path}
	case u.Scheme == "http" && (u.Path == "" || u.Path == "/"):
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		return &[2]string{"tcp", host}
	}
	return nil
}

// serveHTTPStream serves HTTP/1.1 on one tunnel stream for a domain, the
// gateway using the stream like a kept-alive connection. It returns once
// the connection is closed: by the server when it is done with it, or,
// after a WebSocket upgrade, by the proxy when the upgraded exchange ends.
func serveHTTPStream(conn net.Conn, h http.Handler) {
	ln := &oneConnListener{done: make(chan struct{})}
	ln.conn = &notifyConn{Conn: conn, onClose: ln.close}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute}
	_ = srv.Serve(ln)
	<-ln.done
}

// notifyConn tells the listener when the connection is closed.
type notifyConn struct {
	net.Conn
	onClose func()
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.onClose()
	return err
}

// CloseWrite keeps half-closes working through the wrapper.
func (c *notifyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// oneConnListener hands out one connection, then blocks until it is done.
type oneConnListener struct {
	mu   sync.Mutex
	conn net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) close() { l.once.Do(func() { close(l.done) }) }

func (l *oneConnListener) Close() error { l.close(); return nil }

func (l *oneConnListener) Addr() net.Addr { return tunnelAddr{} }

type tunnelAddr struct{}

func (tunnelAddr) Network() string { return "leash-tunnel" }
func (tunnelAddr) String() string  { return "gateway" }
