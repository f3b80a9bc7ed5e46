package runner

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/leashpki/leash/internal/enroll"
	"github.com/leashpki/leash/internal/tunnelio"
	"github.com/leashpki/leash/protocol"
	"github.com/leashpki/leash/runner/dockerproxy"
	leashtls "github.com/leashpki/leash/tls"
)

// Agent is a running leash-runner.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	version string
	now     func() time.Time
	proxy   func(*http.Request) (*url.URL, error)
	// reconnect is the backoff between sessions; renewRetry between
	// failed renewals.
	reconnect, renewRetry backoff

	base      string               // gateway URL without trailing slash
	source    *leashtls.Source     // what the runner presents; empty in plain mode
	files     *leashtls.FileSource // bring-your-own certificates
	root      *x509.Certificate    // pinned root (enrolled identity)
	obtained  time.Time            // when the current certificate arrived; rotation loop only after setup
	transport *rotatingTransport
	client    *http.Client
	events    *eventQueue

	rotateReq chan chan error        // rotate jobs ask for a renewal now
	idle      chan chan protocol.Job // idle workers offer their inbox
	held      chan protocol.Job      // the reserved worker's inbox; pollJobs only
	sessions  atomic.Int64           // sessions that registered, for tests and logs
	tunnels   atomic.Int64           // tunnels opened, for tests and logs
	rotation  rotationSignal
	domains   map[string]*domainRouter
	docker    *dockerproxy.Proxy // nil unless the config offers Docker
	keepAlive time.Duration
	buffers   tunnelio.Buffers
	// proxyBuffers serve the domain routes' reverse proxies.
	proxyBuffers tunnelio.ProxyBuffers
}

// Option configures an Agent.
type Option func(*Agent)

// WithLogger sets the logger; default discards.
func WithLogger(l *slog.Logger) Option { return func(a *Agent) { a.log = l } }

// WithVersion sets the version reported at registration.
func WithVersion(v string) Option { return func(a *Agent) { a.version = v } }

// WithProxy overrides http.ProxyFromEnvironment.
func WithProxy(p func(*http.Request) (*url.URL, error)) Option {
	return func(a *Agent) { a.proxy = p }
}

// WithReconnectBackoff sets the reconnect backoff bounds (default 1 s to
// 30 s, with jitter).
func WithReconnectBackoff(lo, hi time.Duration) Option {
	return func(a *Agent) { a.reconnect = backoff{Min: lo, Max: hi} }
}

// WithTunnelKeepAlive sets the tunnel's keepalive interval (default
// protocol.TunnelKeepAlive); a peer that stops answering is noticed within
// about two intervals.
func WithTunnelKeepAlive(d time.Duration) Option { return func(a *Agent) { a.keepAlive = d } }

// jobWorkers bounds how many jobs run at once.
const jobWorkers = 4

// New checks cfg and prepares an Agent. It touches neither the network nor
// the state directory: Run does.
func New(cfg Config, opts ...Option) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.JobTimeout == 0 {
		cfg.JobTimeout = DefaultJobTimeout
	}
	if cfg.SessionPorts == nil {
		cfg.SessionPorts = protocol.DefaultSessionPorts(runtime.GOOS)
	}
	a := &Agent{cfg: cfg, log: slog.New(slog.DiscardHandler), version: "dev", now: time.Now,
		reconnect:  backoff{Min: time.Second, Max: 30 * time.Second},
		renewRetry: backoff{Min: time.Second, Max: time.Minute},
		base:       strings.TrimRight(cfg.Gateway, "/"), events: newEventQueue(), source: &leashtls.Source{},
		rotateReq: make(chan chan error), idle: make(chan chan protocol.Job)}
	for _, o := range opts {
		o(a)
	}
	if cfg.Docker != nil {
		p, err := dockerproxy.New(*cfg.Docker, dockerproxy.WithLogger(a.log.With("component", "docker")))
		if err != nil {
			return nil, fmt.Errorf("%w: docker: %w", ErrConfig, err)
		}
		a.docker = p
	}
	a.domains = map[string]*domainRouter{}
	for name, routes := range cfg.Domains {
		d, err := compileDomain(name, routes, &a.proxyBuffers)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		a.domains[name] = d
	}
	return a, nil
}

// Sessions reports how many sessions have registered with the gateway. A
// runner that never lost a request has one.
func (a *Agent) Sessions() int64 { return a.sessions.Load() }

// Tunnels reports how many tunnels have been opened.
func (a *Agent) Tunnels() int64 { return a.tunnels.Load() }

// Certificate returns the certificate the runner presents, or nil in plain
// mode.
func (a *Agent) Certificate() *x509.Certificate {
	if a.source.Load() == nil {
		return nil
	}
	return a.source.Load().Leaf
}

// plain reports whether the gateway speaks plain HTTP (loopback use).
func (a *Agent) plain() bool { return strings.HasPrefix(a.cfg.Gateway, "http://") }

// Run starts the runner and returns when ctx ends (nil) or when a fatal
// error stops it (wrapping ErrFatal or ErrNeedToken).
func (a *Agent) Run(ctx context.Context) error {
	if err := a.setup(ctx); err != nil {
		return err
	}
	defer a.client.CloseIdleConnections()
	g, ctx := errgroup.WithContext(ctx)
	if a.files != nil {
		g.Go(func() error { return a.files.Run(ctx) })
	}
	if a.root != nil {
		g.Go(func() error { return a.rotate(ctx) })
	}
	for range jobWorkers {
		g.Go(func() error { return a.work(ctx) })
	}
	g.Go(func() error { return a.connect(ctx) })
	g.Go(func() error { return a.runTunnel(ctx) })
	return g.Wait()
}

// setup establishes the identity and builds the one client.
func (a *Agent) setup(ctx context.Context) error {
	var tlsCfg *tls.Config
	switch {
	case a.plain():
		a.log.Warn("plain HTTP gateway: no TLS, the runner names itself in a header; use only on loopback",
			"gateway", a.cfg.Gateway)
	case a.cfg.byoCerts():
		// The files are followed by a FileSource; what it loads is
		// presented through a.source like an enrolled certificate.
		fs, err := leashtls.NewFileSource(a.cfg.TLSCert, a.cfg.TLSKey, leashtls.WithLogger(a.log),
			leashtls.WithOnReload(func(c *tls.Certificate) {
				if a.source.Store(c) == nil {
					a.transport.rotate()
					a.rotation.rotated()
				}
			}))
		if err != nil {
			return fmt.Errorf("%w: client certificate: %w", ErrFatal, err)
		}
		if err := a.source.Store(fs.Load()); err != nil {
			return fmt.Errorf("%w: client certificate: %w", ErrFatal, err)
		}
		a.files = fs
		pool, err := readPool(a.cfg.TLSCA)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrFatal, err)
		}
		if tlsCfg, err = leashtls.ClientConfig(leashtls.ClientOptions{Roots: pool, Certificate: a.source.GetClientCertificate}); err != nil {
			return err
		}
	default:
		id, err := a.identity(ctx)
		if err != nil {
			return err
		}
		a.obtained = id.obtained
		if err := a.source.Store(id.cert); err != nil {
			return fmt.Errorf("%w: %w", ErrFatal, err)
		}
		a.root = id.root
		pool := x509.NewCertPool()
		pool.AddCert(id.root)
		if tlsCfg, err = leashtls.ClientConfig(leashtls.ClientOptions{Roots: pool, Certificate: a.source.GetClientCertificate}); err != nil {
			return err
		}
	}
	a.transport = newRotatingTransport(tlsCfg, a.proxy)
	a.client = &http.Client{Transport: a.transport}
	return nil
}

func readPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("tls ca %s: no PEM certificates", path)
	}
	return pool, nil
}

// identity loads the persisted identity or, when there is none, enrolls
// with the token.
func (a *Agent) identity(ctx context.Context) (identity, error) {
	id, err := loadIdentity(a.cfg.StateDir, a.cfg.Name)
	switch {
	case err == nil:
		if na := id.cert.Leaf.NotAfter; !a.now().Before(na) {
			return identity{}, fmt.Errorf("%w: the certificate in %s expired at %s; the runner needs a new enrollment token: create one with 'leash token create --name %s', set LEASH_TOKEN and remove %s",
				ErrNeedToken, a.cfg.StateDir, na.UTC().Format(time.RFC3339), a.cfg.Name, identityFile)
		}
		a.log.Info("identity loaded", "runner", a.cfg.Name, "serial", id.cert.Leaf.SerialNumber.String(),
			"not_after", id.cert.Leaf.NotAfter.UTC())
		return id, nil
	case errors.Is(err, errNoIdentity):
	default:
		return identity{}, fmt.Errorf("%w: %w", ErrFatal, err)
	}
	token, err := a.token()
	if err != nil {
		return identity{}, err
	}
	for {
		id, err := a.enroll(ctx, token)
		if err == nil {
			return id, nil
		}
		if errors.Is(err, ErrFatal) || errors.Is(err, enroll.ErrRefused) || errors.Is(err, enroll.ErrFingerprint) {
			return identity{}, err
		}
		a.log.Warn("enrollment failed; retrying", "err", err)
		if err := a.reconnect.Wait(ctx); err != nil {
			return identity{}, err
		}
	}
}

func (a *Agent) token() (string, error) {
	token := a.cfg.Token
	if a.cfg.TokenFile != "" {
		b, err := os.ReadFile(a.cfg.TokenFile)
		if err != nil {
			return "", fmt.Errorf("%w: token file: %w", ErrFatal, err)
		}
		token = string(bytes.TrimSpace(b))
	}
	if token == "" {
		return "", fmt.Errorf("%w: no identity in %s and no enrollment token: create one with 'leash token create --name %s' and pass it as LEASH_TOKEN or -token-file",
			ErrNeedToken, a.cfg.StateDir, a.cfg.Name)
	}
	return token, nil
}

// enroll spends token: pin the root by the token's fingerprint, send a
// CSR for a key generated here, verify and persist what comes back.
func (a *Agent) enroll(ctx context.Context, token string) (identity, error) {
	hints, err := protocol.ParseTokenHints(token)
	if err != nil {
		return identity{}, fmt.Errorf("%w: %w", ErrFatal, err)
	}
	if hints.Subject != a.cfg.Name {
		return identity{}, fmt.Errorf("%w: the token enrolls %q but this runner is named %q", ErrFatal, hints.Subject, a.cfg.Name)
	}
	if !hints.Expiry.After(a.now()) {
		return identity{}, fmt.Errorf("%w: the token expired at %s; create a new one", ErrNeedToken, hints.Expiry.Format(time.RFC3339))
	}
	enrollURL := a.cfg.EnrollURL
	if enrollURL == "" {
		if enrollURL, err = enroll.DefaultURL(a.cfg.Gateway); err != nil {
			return identity{}, fmt.Errorf("%w: %w", ErrFatal, err)
		}
	}
	cl := enroll.Client{URL: enrollURL, Proxy: a.proxy}
	root, err := cl.FetchRoot(ctx, hints.RootFingerprint)
	if err != nil {
		return identity{}, err
	}
	key, err := newKey()
	if err != nil {
		return identity{}, err
	}
	csr, err := newCSR(key, a.cfg.Name)
	if err != nil {
		return identity{}, err
	}
	chain, err := cl.Enroll(ctx, root, token, csr)
	if err != nil {
		return identity{}, err
	}
	if err := verifyChain(chain, root, a.cfg.Name); err != nil {
		return identity{}, fmt.Errorf("%w: %w", ErrFatal, err)
	}
	cert, err := pairFromChain(key, chain)
	if err != nil {
		return identity{}, fmt.Errorf("%w: %w", ErrFatal, err)
	}
	id := identity{cert: cert, root: root, obtained: time.Now()}
	if err := saveIdentity(a.cfg.StateDir, id); err != nil {
		return identity{}, fmt.Errorf("%w: enrolled but cannot keep the identity: %w", ErrFatal, err)
	}
	a.log.Info("enrolled", "runner", a.cfg.Name, "serial", chain[0].SerialNumber.String(),
		"not_after", chain[0].NotAfter.UTC(), "root", fingerprint(root))
	return id, nil
}
