// Package testharness runs Leash in one test process: an embedded CA, one
// or more gateways and any number of runners, all on listeners bound to
// 127.0.0.1:0, plus operator and Prometheus clients with their own
// certificates. Everything it starts is stopped, and waited for, in
// t.Cleanup. Nothing is mocked: the runners enroll with real tokens over
// the enrollment listener and speak mTLS to the API listener.
//
//	h := testharness.New(t)
//	gw := h.StartGateway(t)
//	r := h.StartRunner(t, gw, "web-1")
//	testharness.Eventually(t, 10*time.Second, "runner online", func() bool { ... })
//
// Stores come from Options.OpenStore, called once per gateway so that two
// gateways share one database through two connections, as replicas do.
package testharness

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/gateway/store/sqlitestore"
	leashtls "github.com/leashpki/leash/tls"
)

// Options configure New.
type Options struct {
	// OpenStore opens a new connection to the harness's one database. The
	// default opens an SQLite file in the test's temp dir.
	OpenStore func(t testing.TB) store.Store
	// RunnerLifetime, when set, is the default (and minimum) lifetime of
	// runner certificates.
	RunnerLifetime time.Duration
	// Gateway adjusts every gateway's configuration before it starts.
	Gateway func(*gateway.Config)
}

// Harness is one Leash installation under test.
type Harness struct {
	opts  Options
	CADir string
	// CA and Store are the harness's own handles (for minting tokens and
	// inspecting state); each gateway opens its own.
	CA    *ca.Authority
	Store store.Store
	Log   *slog.Logger
}

// New initialises a CA in a temp dir and opens it on a store.
func New(t testing.TB, opts Options) *Harness {
	t.Helper()
	if opts.OpenStore == nil {
		path := filepath.Join(t.TempDir(), "leash.db")
		opts.OpenStore = func(t testing.TB) store.Store {
			t.Helper()
			st, err := sqlitestore.Open(context.Background(), path)
			if err != nil {
				t.Fatalf("open sqlite store: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}
	}
	h := &Harness{opts: opts, CADir: filepath.Join(t.TempDir(), "ca"), Log: testLogger(t)}
	// Keys in clear: encrypting costs PBKDF2 rounds that make every test
	// seconds slower under the race detector; ca has the password tests.
	if _, err := ca.Init(h.CADir, ca.InitOptions{Name: "Harness", InsecureNoPassword: true}); err != nil {
		t.Fatalf("ca init: %v", err)
	}
	if opts.RunnerLifetime > 0 {
		l := ca.Duration(opts.RunnerLifetime)
		if err := ca.SetProfileLifetimes(h.CADir, ca.ProfileRunner, ca.Lifetimes{Default: l, Min: l, Max: 30 * 24 * ca.Duration(time.Hour)}); err != nil {
			t.Fatalf("runner lifetime: %v", err)
		}
	}
	h.Store = opts.OpenStore(t)
	h.CA = h.openCA(t, h.Store)
	return h
}

func (h *Harness) openCA(t testing.TB, st store.Store) *ca.Authority {
	t.Helper()
	a, err := ca.Open(ca.Config{Dir: h.CADir}, st, ca.WithLogger(h.Log))
	if err != nil {
		t.Fatalf("open CA: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// testLogger logs warnings and errors to the test log; LEASH_TEST_LOG=debug
// or info shows more.
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	_ = level.UnmarshalText([]byte(os.Getenv("LEASH_TEST_LOG")))
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Gateway is one running gateway replica.
type Gateway struct {
	Server    *gateway.Server
	CA        *ca.Authority
	Store     store.Store
	APIURL    string // https://127.0.0.1:port
	EnrollURL string
	apiAddr   string
	enrollAdr string
	cancel    context.CancelFunc
	done      chan error
}

// GatewayOptions start a gateway on given addresses (to restart one where
// it was) or with its own store connection.
type GatewayOptions struct {
	APIAddr, EnrollAddr string // default 127.0.0.1:0
	ID                  string
	// Mode is mtls unless set; plain serves the API over http://.
	Mode leashtls.Mode
}

// StartGateway starts an mTLS gateway backed by its own store connection
// and CA handle, and waits until it serves.
func (h *Harness) StartGateway(t testing.TB, o ...GatewayOptions) *Gateway {
	t.Helper()
	var opt GatewayOptions
	if len(o) > 0 {
		opt = o[0]
	}
	st := h.opts.OpenStore(t)
	authority := h.openCA(t, st)
	apiLn := listen(t, opt.APIAddr)
	enrollLn := listen(t, opt.EnrollAddr)
	if opt.Mode == "" {
		opt.Mode = leashtls.ModeMTLS
	}
	cfg := gateway.Config{ID: opt.ID, Version: "test", Mode: opt.Mode,
		Listen: apiLn.Addr().String(), EnrollListen: enrollLn.Addr().String(),
		HeartbeatInterval: time.Second, OfflineAfter: 3 * time.Second}
	if cfg.ID == "" {
		cfg.ID = "gw-" + apiLn.Addr().(*net.TCPAddr).AddrPort().String()
	}
	if h.opts.Gateway != nil {
		h.opts.Gateway(&cfg)
	}
	srv, err := gateway.New(cfg, authority, st, gateway.WithLogger(h.Log), gateway.WithListeners(apiLn, enrollLn, nil))
	if err != nil {
		_ = apiLn.Close()
		_ = enrollLn.Close()
		t.Fatalf("gateway.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	scheme := "https://"
	if opt.Mode == leashtls.ModePlain {
		scheme = "http://"
	}
	g := &Gateway{Server: srv, CA: authority, Store: st, APIURL: scheme + apiLn.Addr().String(),
		EnrollURL: "https://" + enrollLn.Addr().String(), apiAddr: apiLn.Addr().String(),
		enrollAdr: enrollLn.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- srv.Run(ctx) }()
	t.Cleanup(func() { g.Stop(t) })
	return g
}

// Restart stops g and starts a new gateway on the same addresses.
func (h *Harness) Restart(t testing.TB, g *Gateway) *Gateway {
	t.Helper()
	g.Stop(t)
	var ng *Gateway
	// The old sockets are closed; binding the same port again can still
	// race with the kernel for a moment.
	Eventually(t, 10*time.Second, "rebind "+g.apiAddr, func() bool {
		if !canListen(g.apiAddr) || !canListen(g.enrollAdr) {
			return false
		}
		ng = h.StartGateway(t, GatewayOptions{APIAddr: g.apiAddr, EnrollAddr: g.enrollAdr, ID: g.Server.ID(), Mode: g.Server.Mode()})
		return true
	})
	return ng
}

// Stop shuts the gateway down and waits for it; calling it again is a
// no-op.
func (g *Gateway) Stop(t testing.TB) {
	t.Helper()
	if g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	select {
	case err := <-g.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("gateway %s stopped with: %v", g.Server.ID(), err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("gateway %s did not stop within 30s", g.Server.ID())
	}
}

func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	return ln
}

func canListen(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

// Token mints a one-time runner enrollment token for name.
func (h *Harness) Token(t testing.TB, name string) string {
	t.Helper()
	tok, err := h.CA.CreateToken(context.Background(), ca.TokenRequest{Profile: ca.ProfileRunner, Subject: name})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return tok.Value
}

// Eventually polls cond until it holds or timeout passes, then fails the
// test naming what it waited for.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := 5 * time.Millisecond; ; wait = min(wait*2, 200*time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(wait)
	}
}
