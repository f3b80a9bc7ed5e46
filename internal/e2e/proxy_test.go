package e2e

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
	"github.com/leashpki/leash/runner"
)

// connectProxy is a minimal HTTP CONNECT proxy that records the targets it
// tunnelled to, standing in for a corporate HTTPS proxy.
type connectProxy struct {
	mu      sync.Mutex
	targets map[string]int
	closed  bool           // no more pipes: the test is ending
	wg      sync.WaitGroup // the pipes' copy goroutines
}

// close stops new pipes and waits for the running ones (their connections
// end when the server and the gateway close). A CONNECT still in its
// handler after this closes its connections instead of piping them.
func (p *connectProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	upstream, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	p.targets[r.Host]++
	p.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	client, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		_ = upstream.Close()
		return
	}
	// wg.Add must not race the cleanup's Wait: a CONNECT can still be in
	// its handler when the server closes.
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = upstream.Close()
		_ = client.Close()
		return
	}
	p.wg.Add(2)
	p.mu.Unlock()
	pipe := func(dst, src net.Conn) {
		defer p.wg.Done()
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
	}
	go pipe(upstream, client)
	go pipe(client, upstream)
}

func (p *connectProxy) count(target string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.targets[target]
}

// TestRunnerThroughHTTPSProxy: enrollment, the API session, renewal and
// jobs all go through the proxy the runner is given (HTTPS_PROXY in
// production; http.ProxyFromEnvironment never proxies loopback, so the
// test hands the proxy in directly).
func TestRunnerThroughHTTPSProxy(t *testing.T) {
	h := testharness.New(t, testharness.Options{})
	gw := h.StartGateway(t)
	proxy := &connectProxy{targets: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		proxy.close()
	})
	proxyURL := &url.URL{Scheme: "http", Host: ln.Addr().String()}

	r := h.StartRunner(t, gw, "behind-proxy", testharness.RunnerOptions{
		Services: map[string]string{"echo": echoServer(t, "echo")},
		Options:  []runner.Option{runner.WithProxy(http.ProxyURL(proxyURL))}})
	testharness.Eventually(t, 10*time.Second, "registered through the proxy", func() bool { return r.Agent.Sessions() == 1 })
	op := h.Client(t, ca.ProfileOperator, "alice")
	first := r.Agent.Certificate().SerialNumber
	j := waitJob(t, op, gw, submit(t, op, gw, protocol.JobSubmit{Runner: "behind-proxy", Kind: protocol.JobRotate}).ID)
	if j.State != protocol.JobSucceeded || r.Agent.Certificate().SerialNumber.Cmp(first) == 0 {
		t.Fatalf("rotate through the proxy: %+v %+v", j, j.Result)
	}
	// The tunnel too goes through the proxy: the service answers.
	testharness.Eventually(t, 10*time.Second, "tunnel through the proxy", func() bool { return r.Agent.Tunnels() >= 1 })
	c, err := op.Connect(t, gw, "behind-proxy", "echo")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("via proxy"))
	buf := make([]byte, 9)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "via proxy" {
		t.Fatalf("service through a tunnel through the proxy: %q %v", buf, err)
	}
	_ = c.Close()
	api, enroll := gw.APIURL[len("https://"):], gw.EnrollURL[len("https://"):]
	if proxy.count(enroll) < 1 || proxy.count(api) < 1 {
		t.Fatalf("proxy tunnels: %v; want the enrollment (%s) and the API (%s) through it", proxy.targets, enroll, api)
	}
}
