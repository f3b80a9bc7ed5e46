package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/leashpki/leash/gateway/domain"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/tunnelio"
	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// domainPrefix is where HTTP domains live in the store's Blobs, one JSON
// document per domain, shared by every replica.
const domainPrefix = "domains/"

// domainRefresh is how often a replica re-reads the domains, so that a
// change made through another replica applies everywhere.
const domainRefresh = 2 * time.Second

// domains serves the public listeners: Host → domain → the runner that
// serves it (one runner per domain), behind the domain's client policy.
type domains struct {
	s       *Server
	buffers tunnelio.ProxyBuffers // the domain proxies' copy buffers
	mu      sync.RWMutex
	by      map[string]*servedDomain
}

type servedDomain struct {
	cfg       protocol.Domain
	live      *domain.Live
	transport *streamTransport
}

func newDomains(s *Server) *domains { return &domains{s: s, by: map[string]*servedDomain{}} }

// decodeDomain validates a stored or submitted domain document.
func decodeDomain(b []byte) (protocol.Domain, domain.Policy, error) {
	var d protocol.Domain
	if err := decodeStrict(b, &d); err != nil {
		return d, domain.Policy{}, err
	}
	var p domain.Policy
	if len(d.Policy) > 0 && string(d.Policy) != "null" {
		if err := decodeStrict(d.Policy, &p); err != nil {
			return d, p, fmt.Errorf("policy: %w", err)
		}
	}
	var errs []error
	if err := validDomain(d.Name); err != nil {
		errs = append(errs, fmt.Errorf("name: %w", err))
	}
	if err := leashtls.ValidName(d.Runner); err != nil {
		errs = append(errs, fmt.Errorf("runner: %w", err))
	}
	if err := p.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("policy: %w", err))
	}
	return d, p, errors.Join(errs...)
}

func validDomain(name string) error {
	if name == "" || len(name) > 253 || strings.ToLower(name) != name || strings.ContainsAny(name, "/:@ ") ||
		strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return fmt.Errorf("%q is not a lower-case DNS name", name)
	}
	return nil
}

// reload reads every domain from the store and applies the differences:
// a changed policy is swapped in for new requests only, a new runner gets
// a new transport (streams in flight stay on the old one), a removed
// domain stops answering.
func (ds *domains) reload(ctx context.Context) error {
	keys, err := ds.s.st.ListBlobs(ctx, strings.TrimSuffix(domainPrefix, "/"), false)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, k := range keys {
		rec, err := ds.s.st.Blob(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		d, p, err := decodeDomain(rec.Value)
		if err != nil {
			ds.s.log.Error("stored domain is invalid; ignoring it", "key", k, "err", err)
			continue
		}
		seen[d.Name] = true
		if err := ds.apply(d, p); err != nil {
			ds.s.log.Error("domain not applied", "domain", d.Name, "err", err)
		}
	}
	ds.mu.Lock()
	for name, sd := range ds.by {
		if !seen[name] {
			delete(ds.by, name)
			sd.transport.retire()
			ds.s.log.Info("domain removed", "domain", name)
		}
	}
	ds.mu.Unlock()
	return nil
}

func (ds *domains) apply(d protocol.Domain, p domain.Policy) error {
	ds.mu.RLock()
	cur := ds.by[d.Name]
	ds.mu.RUnlock()
	if cur != nil && cur.cfg.Runner == d.Runner {
		if !bytes.Equal(cur.cfg.Policy, d.Policy) {
			if err := cur.live.Store(p); err != nil {
				return err
			}
			cur.cfg = d
			ds.s.log.Info("domain policy changed", "domain", d.Name)
		}
		return nil
	}
	sd := &servedDomain{cfg: d, transport: ds.transport(d)}
	live, err := domain.NewLive(p, ds.proxy(d, sd.transport), domain.WithLogger(ds.s.log), domain.WithDomain(d.Name))
	if err != nil {
		return err
	}
	sd.live = live
	ds.mu.Lock()
	ds.by[d.Name] = sd
	ds.mu.Unlock()
	if cur != nil {
		cur.transport.retire()
	}
	ds.s.log.Info("domain served", "domain", d.Name, "runner", d.Runner)
	return nil
}

// transport reaches the runner's application through its tunnel: every
// connection is a stream naming the domain, which the runner maps to its
// own routes. Streams are kept alive and reused like connections.
func (ds *domains) transport(d protocol.Domain) *streamTransport {
	return newStreamTransport(func(ctx context.Context) (net.Conn, error) {
		return ds.s.tunnels.dialKind(ctx, d.Runner, protocol.StreamHTTP, d.Name, "https://"+d.Name)
	}, 128, 90*time.Second)
}

func (ds *domains) proxy(d protocol.Domain, tr http.RoundTripper) http.Handler {
	target := &url.URL{Scheme: "http", Host: d.Name}
	return &httputil.ReverseProxy{
		Transport:  tr,
		BufferPool: &ds.buffers,
		ErrorLog:   slog.NewLogLogger(ds.s.log.With("domain", d.Name).Handler(), slog.LevelWarn),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			// X-Forwarded-For holds the client the policy resolved (from
			// trusted forwarders only), never a chain the client made up.
			pr.Out.Header.Del("X-Forwarded-For")
			if ip := domain.ClientIP(pr.In.Context()); ip.IsValid() {
				pr.Out.Header.Set("X-Forwarded-For", ip.String())
			}
			pr.Out.Header.Set("X-Forwarded-Host", pr.In.Host)
			proto := "http"
			if pr.In.TLS != nil {
				proto = "https"
			}
			pr.Out.Header.Set("X-Forwarded-Proto", proto)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status, msg := http.StatusBadGateway, "the runner serving this domain could not answer"
			if errors.Is(err, errNoTunnel) {
				status, msg = http.StatusServiceUnavailable, "the runner serving this domain is not connected"
			}
			ds.s.log.Warn("domain upstream failed", "domain", d.Name, "runner", d.Runner,
				"transaction", domain.TransactionID(r.Context()), "err", err)
			http.Error(w, msg, status)
		},
	}
}

// ServeHTTP routes a public request by its Host.
func (ds *domains) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ds.mu.RLock()
	sd := ds.by[host]
	ds.mu.RUnlock()
	if sd == nil {
		// The same 404 a stealth domain gives, so that neither tells.
		domain.NotFound(w, r)
		return
	}
	// The domain's read and write timeouts bound this request on the
	// shared listener, and its idle timeout the wait for the next request
	// on this connection. A WebSocket or event stream lives within the
	// read and write timeouts too.
	to := sd.live.Timeouts()
	defer trackIdle(r, to.Idle)()
	rc := http.NewResponseController(w)
	if to.Read > 0 {
		_ = rc.SetReadDeadline(time.Now().Add(to.Read))
	}
	if to.Write > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(to.Write))
	}
	sd.live.ServeHTTP(w, r)
	if r.ProtoMajor == 2 {
		// On HTTP/2 the idle wait starts when this returns: the answer's
		// buffered bytes go out first, waiting for the client's flow
		// control if they must.
		_ = rc.Flush()
	}
}

// has reports whether name is a served domain (on-demand certificates).
func (ds *domains) has(name string) bool {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	return ds.by[name] != nil
}

func (ds *domains) list() []protocol.Domain {
	ds.mu.RLock()
	defer ds.mu.RUnlock()
	out := make([]protocol.Domain, 0, len(ds.by))
	for _, sd := range ds.by {
		out = append(out, sd.cfg)
	}
	return out
}

// runRefresh re-reads the domains every domainRefresh until ctx ends.
func (ds *domains) runRefresh(ctx context.Context) error {
	t := time.NewTicker(domainRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if ds.s.cfg.DomainsDir != "" {
				if err := ds.s.syncDomainFiles(ctx); err != nil && ctx.Err() == nil {
					ds.s.log.Warn("reading the domains directory failed", "err", err)
				}
			}
			if err := ds.reload(ctx); err != nil && ctx.Err() == nil {
				ds.s.log.Warn("reading domains failed; keeping the current ones", "err", err)
			}
		}
	}
}

// putDomain stores a domain document after validating it.
func (s *Server) putDomain(ctx context.Context, b []byte) (protocol.Domain, error) {
	d, p, err := decodeDomain(b)
	if err != nil {
		return d, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "domain: %v", err)
	}
	canon, err := json.Marshal(d)
	if err != nil {
		return d, err
	}
	if err := s.st.PutBlob(ctx, store.BlobRecord{Key: domainPrefix + d.Name, Value: canon, Modified: s.now().UTC()}); err != nil {
		return d, err
	}
	return d, s.domains.apply(d, p)
}
