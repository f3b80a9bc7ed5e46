package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// envBackends names the file TestHelperBackends writes its addresses to.
const envBackends = "LEASH_BENCH_BACKENDS"

// BenchmarkTunnelServerCore is the tunnel matrix in the setting the tunnel
// issue names: "one core for server+runner+backend". The gateway, the
// runner and the services are each a process of their own (the stripped
// binaries of make build, set up as in BenchmarkTunnelProcessRSS; the
// services are this test binary re-executed as TestHelperBackends), all
// pinned with taskset to the first CPU this process may use: the server
// core. The clients run in this process, whose threads are moved to the
// other CPUs for the duration. Direct rows talk to the same service
// processes on the server core, so direct and tunnel share the core the
// same way, and each ratio is what the gateway and the runner cost on it.
//
//	http/direct       BenchmarkTunnelHTTP's closed loop (50 keep-alive
//	                  connections, 1 KiB POST, 1 KiB answer) to the service
//	http/service      the same through the gateway's exposed port
//	http/domain       the same through the domain on the public listener
//	paced/…           the paced variant (1,000 req/s over 50 connections)
//	connect/{seq,par4} BenchmarkTunnelConnect through the exposed echo port
//	bulk              BenchmarkTunnelBulk through the exposed sink port
//
// The references, in processes of their own on the server core too
// (TestHelperBackends as relays and as a proxy, see relay_bench_test.go):
//
//	…-relay           the same through a chain of two relays: for bulk the
//	                  ceiling of x-direct in this setting; for HTTP through
//	                  a service and new connections a reference
//	…/domain-proxy    the same through a bare httputil.ReverseProxy in
//	                  front of a relay: the reference for a domain
//
// Each tunnel row brackets its direct baseline (half before, half after)
// and reports x-direct and the latency added, as the in-process rows do.
// It needs at least two CPUs and is skipped otherwise. Run it with
// -benchtime=2s or more: the setup (builds, CA, processes) takes 10-60 s.
func BenchmarkTunnelServerCore(b *testing.B) {
	cpus := allowedCPUs(b)
	if len(cpus) < 2 {
		b.Skipf("needs two CPUs, one for the gateway, the runner and the services and one for the clients; this process may use %v", cpus)
	}
	serverCore := strconv.Itoa(cpus[0])
	svc := startBackends(b, serverCore)
	// The references: relay chains in front of the sink, the echo and the
	// http service, and a bare HTTP proxy in front of a relay to the http
	// service (see relay_bench_test.go).
	second := startHelper(b, serverCore, "relay-2", 3, envRelayTo+"="+svc.sink+" "+svc.echo+" "+svc.http)
	first := startHelper(b, serverCore, "relay-1", 3, envRelayTo+"="+strings.Join(second, " "))
	proxy := startHelper(b, serverCore, "proxy", 1, envProxyTo+"="+second[2])[0]
	rig := startProcRig(b, serverCore, svc)
	pinThreads(b, cpus[1:])
	b.Logf("gateway, runner and services on CPU %s; clients on CPUs %v", serverCore, cpus[1:])

	body := bytes.Repeat([]byte("q"), httpBodySize)
	direct := newHTTPLoad(b, svc.http)
	relayHTTP, proxyHTTP := newHTTPLoad(b, first[2]), newHTTPLoad(b, proxy)
	warmHTTP(b, body, direct, rig.service, rig.domain, relayHTTP, proxyHTTP)
	closed, paced := httpLoops(body)
	b.Run("http", func(b *testing.B) {
		b.Run("direct", func(b *testing.B) { runHTTP(b, direct, closed(direct)) })
		b.Run("service", func(b *testing.B) { compareHTTP(b, direct, rig.service, closed, runHTTP, targetHTTP, "service") })
		b.Run("domain", func(b *testing.B) { compareHTTP(b, direct, rig.domain, closed, runHTTP, targetDomainHTTP, "domain") })
		b.Run("service-relay", func(b *testing.B) { compareHTTP(b, direct, relayHTTP, closed, runHTTP, targetHTTP, "relay chain") })
		b.Run("domain-proxy", func(b *testing.B) {
			compareHTTP(b, direct, proxyHTTP, closed, runHTTP, targetDomainHTTP, "proxy and relay")
		})
	})
	b.Run("paced", func(b *testing.B) {
		b.Run("direct", func(b *testing.B) { runHTTP(b, direct, paced(direct)) })
		b.Run("service", func(b *testing.B) { compareHTTP(b, direct, rig.service, paced, runHTTP, 0, "service") })
		b.Run("domain", func(b *testing.B) { compareHTTP(b, direct, rig.domain, paced, runHTTP, 0, "domain") })
		b.Run("service-relay", func(b *testing.B) { compareHTTP(b, direct, relayHTTP, paced, runHTTP, 0, "relay chain") })
		b.Run("domain-proxy", func(b *testing.B) { compareHTTP(b, direct, proxyHTTP, paced, runHTTP, 0, "proxy and relay") })
	})
	b.Run("connect", func(b *testing.B) {
		for _, s := range connectShapes() {
			b.Run(s.name, func(b *testing.B) { compareConnect(b, s.workers, svc.echo, rig.echo, "tunnel") })
			b.Run(s.name+"-relay", func(b *testing.B) { compareConnect(b, s.workers, svc.echo, first[1], "relay chain") })
		}
	})
	b.Run("bulk", func(b *testing.B) { compareBulk(b, svc.sink, rig.sink, "tunnel") })
	b.Run("bulk-relay", func(b *testing.B) { compareBulk(b, svc.sink, first[0], "relay chain") })
}

// allowedCPUs lists the CPUs this process may run on, lowest first.
func allowedCPUs(b *testing.B) []int {
	b.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		b.Fatalf("read the CPU affinity: %v", err)
	}
	var cpus []int
	for i := range 1024 {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus
}

// pinThreads moves every thread of this process to cpus until b's cleanup
// puts them back. New threads inherit the mask of the thread that makes
// them, so after two passes over /proc/self/task no thread is left out.
func pinThreads(b *testing.B, cpus []int) {
	b.Helper()
	var before, pinned unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		b.Fatal(err)
	}
	for _, c := range cpus {
		pinned.Set(c)
	}
	setAll := func(set *unix.CPUSet) error {
		for range 2 {
			tasks, err := os.ReadDir("/proc/self/task")
			if err != nil {
				return err
			}
			for _, t := range tasks {
				tid, err := strconv.Atoi(t.Name())
				if err != nil {
					continue
				}
				if err := unix.SchedSetaffinity(tid, set); err != nil && !errors.Is(err, unix.ESRCH) {
					return fmt.Errorf("thread %d: %w", tid, err)
				}
			}
		}
		return nil
	}
	if err := setAll(&pinned); err != nil {
		b.Fatalf("pin the clients: %v", err)
	}
	b.Cleanup(func() {
		if err := setAll(&before); err != nil {
			b.Errorf("restore the CPU affinity: %v", err)
		}
	})
}

// startBackends runs TestHelperBackends in a child process pinned to pin
// and returns its services' addresses.
func startBackends(b *testing.B, pin string) *procServices {
	b.Helper()
	a := startHelper(b, pin, "services", 3)
	return &procServices{echo: a[0], http: a[1], sink: a[2]}
}

// startHelper runs TestHelperBackends in a child process pinned to pin,
// with env added to its environment, and returns the n addresses it
// listens on.
func startHelper(b *testing.B, pin, name string, n int, env ...string) []string {
	b.Helper()
	dir := b.TempDir()
	addrs := filepath.Join(dir, "addrs")
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	p := startProcess(b, dir, name, append([]string{envBackends + "=" + addrs}, env...), pin, self,
		"-test.run=^TestHelperBackends$", "-test.count=1")
	deadline := time.Now().Add(30 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(wait*2, 200*time.Millisecond) {
		p.checkRunning(b)
		if line, err := os.ReadFile(addrs); err == nil {
			if a := strings.Fields(string(line)); len(a) == n {
				return a
			}
			b.Fatalf("%s wrote %q, want %d addresses", name, line, n)
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not start within 30s\n%s", name, p.tail())
		}
		time.Sleep(wait) // between polls
	}
}

// TestHelperBackends is the service process of BenchmarkTunnelServerCore:
// the echo, http and sink services of the tunnel benchmarks on loopback
// ports, whose addresses it writes (atomically) to the file named by
// LEASH_BENCH_BACKENDS. With LEASH_BENCH_RELAY_TO set it is a relay to
// each address that names instead, and with LEASH_BENCH_PROXY_TO a bare
// HTTP proxy (see relay_bench_test.go). It serves until SIGTERM.
func TestHelperBackends(t *testing.T) {
	path := os.Getenv(envBackends)
	if path == "" {
		return // not a test of its own: the child process of BenchmarkTunnelServerCore
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var addrs string
	if to := os.Getenv(envRelayTo); to != "" {
		addrs = serveRelays(t, to)
	} else if to := os.Getenv(envProxyTo); to != "" {
		addrs = serveProxy(t, to)
	} else {
		addrs = strings.Join([]string{serveTCP(t, echoConn), serveHTTPBackend(t), serveTCP(t, sinkConn)}, " ")
	}
	if err := os.WriteFile(path+".tmp", []byte(addrs+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done()
}
