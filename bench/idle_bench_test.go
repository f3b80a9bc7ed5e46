package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// The idle-client helper process finds its certificates and the gateway
// through these variables; without them TestHelperIdleClients skips.
const (
	envIdleDir = "LEASH_BENCH_IDLE_DIR" // <name>.crt, <name>.key, ca.crt
	envIdleURL = "LEASH_BENCH_IDLE_URL" // the gateway's API URL
)

const (
	// idleWarm runners connect before the first measurement, so that what
	// the first connections cost once (TLS and HTTP pools, store caches)
	// is not charged to the runners measured.
	idleWarm = 20
	// idleCeiling is the most gateway heap+stack one idle runner may
	// cost. Measured 57-65 KB on 2026-11-25 (README.md); the ceiling is 3x
	// the highest of those. It is checked only with at least idleCheckMin
	// runners, below which GC noise dominates.
	idleCeiling  = 192 << 10
	idleCheckMin = 50
	// idleCPUWindow is how long idle CPU is sampled, before and after.
	idleCPUWindow = 2 * time.Second
)

// BenchmarkIdleRunnerRSS measures what an idle runner costs the gateway:
// one registered runner holding a job long-poll (GET /v1/jobs/next?wait=30s)
// open on its own mTLS connection. The runners' client side runs in a child
// process (this test binary running TestHelperIdleClients), so the
// gateway process's numbers contain the gateway and nothing of the
// clients. One op is one more idle runner: b.N runners connect on top of
// idleWarm already connected ones; ns/op is the time to bring one to the
// waiting state (TLS handshake with a revocation lookup, register, first
// poll).
//
// Memory is sampled after a forced GC with freed pages returned to the
// OS, before and after the b.N runners connect:
//
//	heap-B/runner    Δ(HeapInuse+StackInuse) / b.N: Go memory held per runner
//	rss-B/runner     Δ VmRSS / b.N (Linux): also counts SQLite's page cache,
//	                 which modernc.org/sqlite allocates outside the Go heap
//	goroutines/runner
//	idle-cpu-us/s/runner  Δ gateway CPU time per second of idling, per runner
//
// Use -benchtime=200x for the documented N=200 figure; -benchtime=1x is a
// smoke test (one runner, noise-dominated, the ceiling is not checked).
func BenchmarkIdleRunnerRSS(b *testing.B) {
	ctx := b.Context()
	n := b.N
	h := testharness.New(b, testharness.Options{Gateway: func(c *gateway.Config) {
		// Idle runners here send no heartbeats; keep them online.
		c.HeartbeatInterval = gateway.DefaultHeartbeatInterval
		c.OfflineAfter = time.Hour
	}})
	gw := h.StartGateway(b)
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca.EncodeCerts(h.CA.Root()), 0o600); err != nil {
		b.Fatal(err)
	}
	for i := range idleWarm + n {
		if err := writeRunnerCert(ctx, h, dir, idleName(i)); err != nil {
			b.Fatal(err)
		}
	}
	clients := startIdleClients(b, dir, gw.APIURL)
	clients.add(b, gw, idleWarm, idleWarm)
	cpuBefore := cpuRate(b, idleCPUWindow)
	before := sampleMem(b)

	b.ResetTimer()
	clients.add(b, gw, n, idleWarm+n)
	b.StopTimer()

	after := sampleMem(b)
	cpuAfter := cpuRate(b, idleCPUWindow)
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	heap := per(after.heap+after.stack, before.heap+before.stack)
	b.ReportMetric(heap, "heap-B/runner")
	if after.rss > 0 {
		b.ReportMetric(per(after.rss, before.rss), "rss-B/runner")
	}
	b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(n), "goroutines/runner")
	b.ReportMetric(float64(cpuAfter-cpuBefore)/float64(time.Microsecond)/float64(n), "idle-cpu-us/s/runner")
	b.Logf("%d idle runners on top of %d: heap+stack %d -> %d KiB, VmRSS %d -> %d KiB, goroutines %d -> %d, gateway CPU %.1f%% -> %.1f%% of a core",
		n, idleWarm, (before.heap+before.stack)>>10, (after.heap+after.stack)>>10, before.rss>>10, after.rss>>10,
		before.goroutines, after.goroutines, 100*cpuBefore.Seconds(), 100*cpuAfter.Seconds())
	if n >= idleCheckMin && heap > idleCeiling {
		b.Errorf("an idle runner costs the gateway %.0f bytes of heap and stack; the ceiling is %d", heap, idleCeiling)
	}
}

func idleName(i int) string { return fmt.Sprintf("idle-%04d", i) }

// writeRunnerCert issues a runner certificate for name straight from the
// CA and writes it, with its key, as <dir>/<name>.crt and .key.
func writeRunnerCert(ctx context.Context, h *testharness.Harness, dir, name string) error {
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		return err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return err
	}
	iss, err := h.CA.Issue(ctx, ca.IssueRequest{Profile: ca.ProfileRunner, Name: name, CSR: csr})
	if err != nil {
		return fmt.Errorf("issue %s: %w", name, err)
	}
	keyPEM, err := ca.MarshalPrivateKey(key, nil)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), iss.ChainPEM(), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600)
}

// memSample is the process's memory after a forced GC.
type memSample struct {
	heap, stack, rss uint64
	goroutines       int
}

func sampleMem(b *testing.B) memSample {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory() // a second GC, and freed pages back to the OS so VmRSS compares
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSample{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
	rss, err := vmRSS()
	if err != nil {
		b.Logf("no VmRSS: %v", err)
	}
	s.rss = rss
	return s
}

// vmRSS reads the resident set size from /proc/self/status.
func vmRSS() (uint64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS line in /proc/self/status")
}

// cpuRate returns the process's CPU time (user+system) per second of wall
// time over window. The benchmark goroutine only sleeps meanwhile.
func cpuRate(b *testing.B, window time.Duration) time.Duration {
	b.Helper()
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatalf("getrusage: %v", err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0, t0 := cpu(), time.Now()
	time.Sleep(window) // a measurement window, not a wait for a condition
	return time.Duration(float64(cpu()-c0) / time.Since(t0).Seconds())
}

// idleClients drives the helper process that holds the idle runners'
// connections.
type idleClients struct {
	in    io.WriteCloser
	lines chan string // the helper's stdout, closed at EOF

	mu       sync.Mutex
	problems []string // the helper's stderr
}

// startIdleClients starts the helper process and stops it, and waits for
// it, in b's cleanup.
func startIdleClients(b *testing.B, dir, apiURL string) *idleClients {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIdleClients$", "-test.count=1")
	cmd.Env = append(os.Environ(), envIdleDir+"="+dir, envIdleURL+"="+apiURL)
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start idle-client helper: %v", err)
	}
	c := &idleClients{in: in, lines: make(chan string, 16)}
	var readers sync.WaitGroup
	readers.Go(func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	})
	readers.Go(func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.mu.Lock()
			c.problems = append(c.problems, sc.Text())
			c.mu.Unlock()
		}
	})
	b.Cleanup(func() {
		_ = in.Close() // the helper's signal to disconnect and exit
		drained := make(chan struct{})
		go func() {
			for range c.lines {
			}
			readers.Wait()
			close(drained)
		}()
		select {
		case <-drained:
		case <-time.After(30 * time.Second):
			b.Errorf("idle-client helper did not exit within 30s; killing it")
			_ = cmd.Process.Kill()
			<-drained
		}
		if err := cmd.Wait(); err != nil {
			b.Errorf("idle-client helper: %v", err)
		}
		for _, p := range c.problems {
			b.Errorf("idle-client helper: %s", p)
		}
	})
	return c
}

// add makes the helper connect k more runners and waits until the gateway
// holds total long-polls.
func (c *idleClients) add(b *testing.B, gw *testharness.Gateway, k, total int) {
	b.Helper()
	if _, err := fmt.Fprintf(c.in, "add %d\n", k); err != nil {
		b.Fatalf("idle-client helper: %v", err)
	}
	select {
	case line, ok := <-c.lines:
		if !ok || line != "ready "+strconv.Itoa(total) {
			c.mu.Lock()
			defer c.mu.Unlock()
			b.Fatalf("idle-client helper answered %q (exited: %v); stderr: %q", line, !ok, c.problems)
		}
	case <-time.After(5 * time.Minute):
		b.Fatalf("idle-client helper: no answer to add %d within 5m", k)
	}
	testharness.Eventually(b, time.Minute, fmt.Sprintf("%d long-polls waiting", total), func() bool {
		return waiters(b, gw) == total
	})
}

// waiters reads the gateway's leash_gateway_longpoll_waiters gauge.
func waiters(b *testing.B, gw *testharness.Gateway) int {
	b.Helper()
	families, err := gw.Server.Registry().Gather()
	if err != nil {
		b.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() == "leash_gateway_longpoll_waiters" && len(f.GetMetric()) == 1 {
			return int(f.GetMetric()[0].GetGauge().GetValue())
		}
	}
	b.Fatal("no leash_gateway_longpoll_waiters gauge")
	return 0
}

// TestHelperIdleClients is the client side of BenchmarkIdleRunnerRSS, run
// in a child process; run directly it skips. It reads "add <k>" lines on
// stdin, connects the next k runners of $LEASH_BENCH_IDLE_DIR (register,
// then a long-poll re-sent whenever it ends), answers "ready <total>", and
// disconnects everything and exits at EOF. Anything on stderr is a problem
// the benchmark reports.
func TestHelperIdleClients(t *testing.T) {
	dir, apiURL := os.Getenv(envIdleDir), os.Getenv(envIdleURL)
	if dir == "" || apiURL == "" {
		return // not a test of its own: the child process of BenchmarkIdleRunnerRSS
	}
	rootPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var polls sync.WaitGroup
	defer func() {
		cancel()
		polls.Wait()
	}()
	total := 0
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var k int
		if _, err := fmt.Sscanf(sc.Text(), "add %d", &k); err != nil {
			t.Fatalf("command %q: %v", sc.Text(), err)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for i := total; i < total+k; i++ {
			g.Go(func() error {
				client, err := registerIdle(gctx, dir, apiURL, roots, idleName(i))
				if err != nil {
					return err
				}
				polls.Go(func() { longPoll(ctx, client, apiURL, idleName(i)) })
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			t.Fatal(err)
		}
		total += k
		fmt.Printf("ready %d\n", total)
	}
}

// registerIdle loads name's certificate, registers it over a connection
// of its own and returns the client that keeps that connection.
func registerIdle(ctx context.Context, dir, apiURL string, roots *x509.CertPool, name string) (*http.Client, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair},
		MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 1}
	client := &http.Client{Transport: tr}
	body := fmt.Sprintf(`{"hostname":%q,"os":"linux","arch":"amd64","version":"bench"}`, name+".bench")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+"/v1/register", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	status, answer, err := roundTrip(client, req)
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("register %s: status %d: %s", name, status, answer)
	}
	return client, nil
}

// longPoll keeps one job long-poll open for name until ctx ends.
func longPoll(ctx context.Context, client *http.Client, apiURL, name string) {
	defer client.CloseIdleConnections()
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"/v1/jobs/next?wait=30s", nil)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			return
		}
		status, answer, err := roundTrip(client, req)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			fmt.Fprintf(os.Stderr, "%s: long-poll: %v\n", name, err)
			return
		case status != http.StatusNoContent:
			fmt.Fprintf(os.Stderr, "%s: long-poll: status %d: %s\n", name, status, answer)
			return
		}
	}
}

func roundTrip(client *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body bytes.Buffer
	_, err = io.Copy(&body, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body.Bytes(), err
}
