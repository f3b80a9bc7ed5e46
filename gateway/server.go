package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/tunnelio"
	leashtls "github.com/leashpki/leash/tls"
)

// Server is one gateway replica.
type Server struct {
	cfg     Config
	ca      *ca.Authority
	st      store.Store
	log     *slog.Logger
	now     func() time.Time
	reg     *prometheus.Registry
	m       *metrics
	conns   *connTracker
	polls   *waiters
	tunnels *tunnels
	gather  tunnelio.Gatherer // buffers for the tunnels' large frames
	exposed []*exposed

	certs     *serverCerts // nil in plain mode without enrollment
	clientCAs *x509.CertPool

	apiLn, enrollLn, metricsLn net.Listener
	publicLn, publicTLSLn      net.Listener
	domains                    *domains
	sessions                   *sessions
	docker                     *dockerProxies
	capabilities               capabilityCache
	buffers                    tunnelio.Buffers
	publicCerts                *serverCerts
	ui                         http.Handler  // nil unless the browser UI is enabled
	stopping                   chan struct{} // closed when Run begins shutting down
	stopOnce                   sync.Once
	hijacked                   sync.WaitGroup // handlers of hijacked connections (see hijack)
}

// Option configures New.
type Option func(*Server)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithClock sets the clock used for leases, heartbeats and expiry.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithListeners hands New listeners bound by the caller (tests bind
// 127.0.0.1:0). A nil listener is bound from the Config.
func WithListeners(api, enroll, metrics net.Listener) Option {
	return func(s *Server) { s.apiLn, s.enrollLn, s.metricsLn = api, enroll, metrics }
}

// New validates cfg, prepares certificates and binds the listeners. The
// authority and store are the caller's and stay open after Run returns.
func New(cfg Config, authority *ca.Authority, st store.Store, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if authority == nil || st == nil {
		return nil, errors.New("gateway: an authority and a store are required")
	}
	s := &Server{cfg: cfg.withDefaults(), ca: authority, st: st, log: slog.New(slog.DiscardHandler), now: time.Now,
		reg: prometheus.NewRegistry(), stopping: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	if s.cfg.ID == "" {
		s.cfg.ID, _ = os.Hostname()
	}
	s.log = s.log.With("gateway_id", s.cfg.ID)
	s.m = newMetrics(s.reg, s)
	s.conns = newConnTracker(s.log, s.now)
	s.polls = newWaiters()
	s.tunnels = newTunnels(s.log)
	s.domains = newDomains(s)
	s.sessions = newSessions(s)
	s.docker = newDockerProxies(s)
	if err := s.prepareCertificates(); err != nil {
		return nil, err
	}
	if err := s.bind(); err != nil {
		return nil, err
	}
	if err := s.mountUI(); err != nil {
		s.closeListeners()
		return nil, err
	}
	return s, nil
}

// prepareCertificates loads or issues the server certificate and the
// client CA pool.
func (s *Server) prepareCertificates() error {
	needCert := s.cfg.Mode != leashtls.ModePlain || s.cfg.EnrollListen != EnrollOff
	if !needCert {
		return nil
	}
	var err error
	if s.cfg.TLSCert != "" {
		s.certs, err = fileServerCerts(s.cfg.TLSCert, s.cfg.TLSKey, s.log)
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		s.certs, err = s.managedServerCerts(ctx)
		cancel()
	}
	if err != nil {
		return err
	}
	s.clientCAs = x509.NewCertPool()
	if s.cfg.TLSClientCA != "" {
		b, err := os.ReadFile(s.cfg.TLSClientCA)
		if err != nil {
			return fmt.Errorf("tls client CA: %w", err)
		}
		certs, err := ca.ParseCerts(s.cfg.TLSClientCA, b)
		if err != nil {
			return fmt.Errorf("tls client CA: %w", err)
		}
		for _, c := range certs {
			s.clientCAs.AddCert(c)
		}
	} else {
		s.clientCAs.AddCert(s.ca.Root())
	}
	return nil
}

func (s *Server) bind() error {
	var err error
	listen := func(ln *net.Listener, addr string) {
		if *ln != nil || err != nil || addr == "" || addr == EnrollOff {
			return
		}
		*ln, err = net.Listen("tcp", addr)
	}
	listen(&s.apiLn, s.cfg.Listen)
	listen(&s.enrollLn, s.cfg.EnrollListen)
	listen(&s.metricsLn, s.cfg.MetricsListen)
	listen(&s.publicLn, s.cfg.PublicListen)
	listen(&s.publicTLSLn, s.cfg.PublicTLSListen)
	if err != nil {
		s.closeListeners()
		return fmt.Errorf("gateway listen: %w", err)
	}
	if s.exposed, err = bindExposures(s.cfg.Expose); err != nil {
		s.closeListeners()
		return err
	}
	return nil
}

func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.apiLn, s.enrollLn, s.metricsLn, s.publicLn, s.publicTLSLn} {
		if ln != nil {
			_ = ln.Close()
		}
	}
	for _, e := range s.exposed {
		_ = e.ln.Close()
	}
}

// ExposedAddrs are the addresses of the exposed services, in Config order.
func (s *Server) ExposedAddrs() []net.Addr {
	var out []net.Addr
	for _, e := range s.exposed {
		out = append(out, e.ln.Addr())
	}
	return out
}

// APIAddr is the API listener's address.
func (s *Server) APIAddr() net.Addr { return s.apiLn.Addr() }

// EnrollAddr is the enrollment listener's address, or nil when disabled.
func (s *Server) EnrollAddr() net.Addr {
	if s.enrollLn == nil {
		return nil
	}
	return s.enrollLn.Addr()
}

// PublicAddr and PublicTLSAddr are the public (HTTP domain) listeners'
// addresses, or nil.
func (s *Server) PublicAddr() net.Addr { return addrOf(s.publicLn) }

// PublicTLSAddr is the public HTTPS listener's address, or nil.
func (s *Server) PublicTLSAddr() net.Addr { return addrOf(s.publicTLSLn) }

func addrOf(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}

// MetricsAddr is the separate metrics listener's address, or nil.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// Registry is the gateway's Prometheus registry.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Mode is the API listener's TLS mode.
func (s *Server) Mode() leashtls.Mode { return s.cfg.Mode }

// ID is the replica id.
func (s *Server) ID() string { return s.cfg.ID }

// Run serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	apiSrv, err := s.apiServer()
	if err != nil {
		s.closeListeners()
		return err
	}
	servers := []*http.Server{apiSrv}
	lns := []net.Listener{s.apiLn}
	if s.enrollLn != nil {
		servers = append(servers, s.enrollServer())
		lns = append(lns, s.enrollLn)
	}
	if s.metricsLn != nil {
		ms, err := s.metricsServer()
		if err != nil {
			s.closeListeners()
			return err
		}
		servers = append(servers, ms)
		lns = append(lns, s.metricsLn)
	}
	if err := s.conns.loadRevoked(ctx, s.st); err != nil {
		s.closeListeners()
		return err
	}
	if err := s.domains.reload(ctx); err != nil {
		s.closeListeners()
		return fmt.Errorf("read domains: %w", err)
	}
	if s.cfg.DomainsDir != "" {
		if err := s.syncDomainFiles(ctx); err != nil {
			s.closeListeners()
			return err
		}
	}
	if s.publicTLSLn != nil {
		pc, err := s.onDemandCerts()
		if err != nil {
			s.closeListeners()
			return err
		}
		s.publicCerts = pc
		servers = append(servers, s.publicServer(pc, true))
		lns = append(lns, s.publicTLSLn)
	}
	if s.publicLn != nil {
		servers = append(servers, s.publicServer(s.publicCerts, false))
		lns = append(lns, s.publicLn)
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, srv := range servers {
		ln := lns[i]
		switch ln {
		case s.apiLn: // runners' tunnels arrive here
			ln = s.gather.Listener(ln)
		case s.publicLn, s.publicTLSLn:
			ln = publicListener{ln}
		}
		g.Go(func() error {
			var err error
			if srv.TLSConfig != nil {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("serve %s: %w", ln.Addr(), err)
		})
	}
	s.logListening()
	g.Go(func() error { return s.runJobSignals(gctx) })
	g.Go(func() error { return s.domains.runRefresh(gctx) })
	g.Go(func() error { return s.sessions.runIdle(gctx) })
	if s.publicCerts != nil {
		g.Go(func() error { return s.publicCerts.run(gctx) })
	}
	for _, e := range s.exposed {
		g.Go(func() error { return s.serveExposure(gctx, e) })
	}
	g.Go(func() error { return s.runOfflineDetector(gctx) })
	g.Go(func() error { return s.conns.watchRevocations(gctx, s.st, s.cfg.RevocationPoll) })
	g.Go(func() error { return s.runEventRetention(gctx) })
	if s.certs != nil {
		g.Go(func() error { return s.certs.run(gctx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		s.stopOnce.Do(func() { close(s.stopping) })
		shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var errs []error
		for _, srv := range servers {
			if err := srv.Shutdown(shutCtx); err != nil {
				errs = append(errs, err)
			}
		}
		s.tunnels.closeAll()
		s.docker.closeAll()
		s.conns.closeAll()
		if err := s.waitHijacked(shutCtx); err != nil {
			errs = append(errs, err)
		}
		s.log.Info("gateway stopped")
		return errors.Join(errs...)
	})
	return g.Wait()
}

func (s *Server) logListening() {
	scheme := map[leashtls.Mode]string{leashtls.ModePlain: "http", leashtls.ModeHTTPS: "https",
		leashtls.ModeMTLS: "https (mTLS)"}[s.cfg.Mode]
	s.log.Info("gateway listening", "addr", s.apiLn.Addr().String(), "scheme", scheme)
	if s.enrollLn != nil {
		s.log.Info("enrollment listening", "addr", s.enrollLn.Addr().String(), "scheme", "https")
	}
	if s.metricsLn != nil {
		s.log.Info("metrics listening", "addr", s.metricsLn.Addr().String(), "scheme", "https (mTLS)")
	}
	if s.cfg.Mode == leashtls.ModePlain {
		s.log.Warn("plain mode: no transport security; runners name themselves with a header and operator routes are open; use only on loopback")
	}
}

// apiServer builds the API http.Server for the configured mode.
func (s *Server) apiServer() (*http.Server, error) {
	var tlsCfg *tls.Config
	if s.cfg.Mode != leashtls.ModePlain {
		opts := leashtls.ServerOptions{Mode: s.cfg.Mode, Certificate: s.certs.get, Now: s.now}
		if s.cfg.Mode == leashtls.ModeMTLS {
			opts.ClientCAs = s.clientCAs
			opts.Revocation = s.ca
			opts.OnReject = func(r leashtls.Reason, err error) {
				s.m.handshakeFailures.WithLabelValues(string(r)).Inc()
				s.log.Info("handshake refused", "reason", string(r), "err", err)
			}
		}
		var err error
		if tlsCfg, err = leashtls.ServerConfig(opts); err != nil {
			return nil, err
		}
	}
	handler := s.apiHandler()
	if s.ui != nil {
		handler = withUI(handler, s.ui)
	}
	return &http.Server{
		Handler:           handler,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ConnState:         s.conns.connState,
		ErrorLog:          log.New(&handshakeLog{s: s}, "", 0),
	}, nil
}

func (s *Server) enrollServer() *http.Server {
	cfg, _ := leashtls.ServerConfig(leashtls.ServerOptions{Mode: leashtls.ModeHTTPS, Certificate: s.certs.get,
		MinVersion: tls.VersionTLS12, Now: s.now})
	return &http.Server{Handler: s.enrollHandler(), TLSConfig: cfg, ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: log.New(&handshakeLog{s: s, quiet: true}, "", 0)}
}

func (s *Server) metricsServer() (*http.Server, error) {
	pool := s.clientCAs
	if s.cfg.MetricsClientCA != "" {
		b, err := os.ReadFile(s.cfg.MetricsClientCA)
		if err != nil {
			return nil, fmt.Errorf("metrics client CA: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("metrics client CA %s holds no certificate", s.cfg.MetricsClientCA)
		}
	}
	cfg, err := leashtls.ServerConfig(leashtls.ServerOptions{Mode: leashtls.ModeMTLS, Certificate: s.certs.get,
		ClientCAs: pool, Revocation: s.ca, Roles: []leashtls.Role{leashtls.RolePrometheus}, Now: s.now})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	return &http.Server{Handler: mux, TLSConfig: cfg, ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		WriteTimeout: 30 * time.Second, ErrorLog: log.New(&handshakeLog{s: s}, "", 0)}, nil
}

// publicServer serves the HTTP domains over TLS with certs, or over plain
// HTTP, where certs (nil without a TLS listener) may answer ACME http-01.
func (s *Server) publicServer(certs *serverCerts, useTLS bool) *http.Server {
	srv := &http.Server{Handler: s.domains, ReadHeaderTimeout: s.cfg.ReadHeaderTimeout, IdleTimeout: 2 * time.Minute,
		ErrorLog: log.New(&handshakeLog{s: s, quiet: true}, "", 0)}
	withPublicConn(srv) // domains' idle timeouts
	if useTLS {
		srv.TLSConfig = &tls.Config{GetCertificate: certs.get, MinVersion: tls.VersionTLS12,
			NextProtos: certs.nextProtos()}
	} else {
		srv.Handler = certs.publicHandler(s.domains)
	}
	return srv
}
