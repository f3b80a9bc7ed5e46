package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testharness"
)

const (
	procRunner = "bench-proc"
	// procLoadWindow is how long the http-* and bulk phases keep their
	// load up per op; procSampleEvery is how often both processes are
	// sampled meanwhile.
	procLoadWindow  = 3 * time.Second
	procSampleEvery = 50 * time.Millisecond
	// procStopWait bounds how long a process may take to exit after
	// SIGTERM before it is killed and the benchmark fails.
	procStopWait = 30 * time.Second
	mib          = 1 << 20
	// runnerBinLimit is the product's "≤ 12 MB" for the stripped runner,
	// read as decimal megabytes: a little stricter than the 12 MiB of
	// runner.TestRunnerBinarySize.
	runnerBinLimit = 12_000_000
)

// BenchmarkTunnelProcessRSS measures the memory of a real gateway and a
// real runner, each its own process, as the product runs them. Setup,
// outside every timer:
//
//   - go build -trimpath -ldflags='-s -w' of cmd/leash and cmd/leash-runner
//     (the flags of make build) into a temp dir;
//   - leash ca init (keys in clear), leash token create for procRunner;
//   - leash gateway serve in mTLS mode on SQLite in the temp data dir, on
//     loopback ports picked by binding 127.0.0.1:0 first: API, enrollment,
//     the plain public listener, and three --expose ports for the runner's
//     services echo, http and sink (the same services as tunnel_bench);
//     --domains-dir holds one file serving bench.test from the runner;
//   - leash-runner with a YAML config declaring those three services and
//     the domain bench.test (one catch-all route to the http service),
//     enrolling with the token from LEASH_TOKEN.
//
// The services and all clients run in this benchmark process. Readiness
// is polled with deadlines: an echo, a 1 KiB answer through the exposed
// http port and one through the domain. The phases, in this order, one
// sub-benchmark each:
//
//	binary        runner-bin-MiB and gateway-bin-MiB, the stripped binaries'
//	              sizes (the runner must stay ≤ 12 MB)
//	idle          both processes' VmRSS with the tunnel open and idle
//	streams       idleStreams (500) connections through the exposed echo
//	              port, each proven by one echoed byte, held idle: VmRSS
//	              with them open, and the growth per stream (KiB/stream);
//	              then they are closed and the op waits until the echo
//	              service saw every one end
//	http-service  procLoadWindow of the BenchmarkTunnelHTTP closed loop (50
//	              keep-alive connections, 1 KiB POST, 1 KiB answer) through
//	              the exposed http port: peak VmRSS, and req/s
//	http-domain   the same through the domain on the public listener
//	bulk          procLoadWindow of back-to-back 256 MiB transfers through
//	              the exposed sink port: peak VmRSS, and Gbit/s
//	end           VmRSS after all of it, and VmHWM, each process's peak
//	              resident set over its whole life
//
// VmRSS and VmHWM come from /proc/<pid>/status. Nothing forces a GC in the
// processes, so a figure includes garbage not yet collected and memory
// not yet returned to the OS: it is what the operator's monitoring sees.
// Peaks are the highest of the samples taken every procSampleEvery. Run
// with -benchtime=1x; larger N repeats each phase on the same processes
// and reports the mean (peaks: the highest). Both processes are stopped
// with SIGTERM and waited for before the benchmark returns.
func BenchmarkTunnelProcessRSS(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc/<pid>/status (Linux)")
	}
	p := startProcRig(b, "", nil)
	body := bytes.Repeat([]byte("q"), httpBodySize)
	report := func(b *testing.B, prefix string, gw, rn uint64) {
		b.ReportMetric(float64(gw)/mib, "gateway-"+prefix+"-MiB")
		b.ReportMetric(float64(rn)/mib, "runner-"+prefix+"-MiB")
	}
	b.Run("binary", func(b *testing.B) {
		b.ReportMetric(float64(p.runnerBin)/mib, "runner-bin-MiB")
		b.ReportMetric(float64(p.gatewayBin)/mib, "gateway-bin-MiB")
		verdict := "met"
		if p.runnerBin > runnerBinLimit {
			verdict = "missed"
		}
		b.Logf("stripped leash-runner %.2f MiB (%d bytes), target ≤ %d bytes: %s; leash %.1f MiB",
			float64(p.runnerBin)/mib, p.runnerBin, runnerBinLimit, verdict, float64(p.gatewayBin)/mib)
	})
	b.Run("idle", func(b *testing.B) {
		var gw, rn uint64
		for range b.N {
			g, r := p.sample(b)
			gw, rn = gw+g.rss, rn+r.rss
		}
		report(b, "rss", gw/uint64(b.N), rn/uint64(b.N))
	})
	b.Run("streams", func(b *testing.B) {
		var gw, rn, gwPer, rnPer float64
		for range b.N {
			g, r, g0, r0 := p.streamsRound(b)
			gw, rn = gw+float64(g.rss), rn+float64(r.rss)
			gwPer += (float64(g.rss) - float64(g0.rss)) / idleStreams
			rnPer += (float64(r.rss) - float64(r0.rss)) / idleStreams
		}
		n := float64(b.N)
		report(b, "rss", uint64(gw/n), uint64(rn/n))
		b.ReportMetric(gwPer/n/1024, "gateway-KiB/stream")
		b.ReportMetric(rnPer/n/1024, "runner-KiB/stream")
		b.Logf("%d idle streams: gateway +%.1f KiB, runner +%.1f KiB per stream (VmRSS)", idleStreams, gwPer/n/1024, rnPer/n/1024)
	})
	httpPhase := func(l *httpLoad) func(b *testing.B) {
		return func(b *testing.B) {
			var done, failed int
			var took time.Duration
			var first error
			gw, rn := p.peaks(b, func() {
				for start := time.Now(); time.Since(start) < procLoadWindow; {
					res := hammer(httpConns, 20*httpConns, func() error { return l.do(body) })
					done, failed, took = done+res.n, failed+res.failures, took+res.elapsed
					if first == nil {
						first = res.err
					}
				}
			})
			if first != nil {
				b.Errorf("%d of %d requests failed, first: %v", failed, done, first)
			}
			report(b, "rss", gw, rn)
			b.ReportMetric(float64(done)/took.Seconds(), "req/s")
		}
	}
	b.Run("http-service", httpPhase(p.service))
	b.Run("http-domain", httpPhase(p.domain))
	b.Run("bulk", func(b *testing.B) {
		chunk := bytes.Repeat([]byte("leash-bulk-"), bulkChunk/11+1)[:bulkChunk]
		var transfers int
		var took time.Duration
		gw, rn := p.peaks(b, func() {
			start := time.Now()
			defer func() { took += time.Since(start) }()
			for ; time.Since(start) < procLoadWindow; transfers++ {
				if err := bulkOnce(p.sink, chunk); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b, "rss", gw, rn)
		if took > 0 {
			b.ReportMetric(float64(transfers)*bulkBytes*8/took.Seconds()/1e9, "Gbit/s")
		}
	})
	b.Run("end", func(b *testing.B) {
		var g, r procMem
		for range b.N {
			g, r = p.sample(b)
		}
		report(b, "rss", g.rss, r.rss)
		report(b, "hwm", g.hwm, r.hwm)
		b.Logf("VmHWM over the processes' lives: gateway %.1f MiB, runner %.1f MiB", float64(g.hwm)/mib, float64(r.hwm)/mib)
	})
}

// procRig is a gateway process and a runner process with the addresses
// of what the gateway publishes.
type procRig struct {
	gateway, runner       *benchProcess
	echo, sink            string // exposed ports
	service, domain       *httpLoad
	echoOpen              atomic.Int64 // echo connections the service holds
	runnerBin, gatewayBin int64        // stripped binary sizes
}

// procServices are the addresses of the runner's services echo, http and
// sink.
type procServices struct{ echo, http, sink string }

// startProcRig starts the gateway and the runner processes, pinned to the
// CPUs in pin (a taskset list; "" for no pinning). The runner's services
// are svc, or when svc is nil services in this process (the echo service
// counting its open connections in echoOpen).
func startProcRig(b *testing.B, pin string, svc *procServices) *procRig {
	b.Helper()
	tmp := b.TempDir()
	leash, runnerBin := buildStripped(b, tmp, "leash"), buildStripped(b, tmp, "leash-runner")
	p := &procRig{runnerBin: fileSize(b, runnerBin), gatewayBin: fileSize(b, leash)}
	if svc == nil {
		svc = &procServices{echo: serveTCP(b, func(c net.Conn) {
			p.echoOpen.Add(1)
			defer p.echoOpen.Add(-1)
			echoConn(c)
		}), http: serveHTTPBackend(b), sink: serveTCP(b, sinkConn)}
	}
	echoSvc, httpSvc, sinkSvc := svc.echo, svc.http, svc.sink

	dataDir, domainsDir := filepath.Join(tmp, "data"), filepath.Join(tmp, "domains")
	must(b, os.Mkdir(dataDir, 0o700), os.Mkdir(domainsDir, 0o700),
		os.WriteFile(filepath.Join(domainsDir, "bench.yaml"), fmt.Appendf(nil, "name: %s\nrunner: %s\n", domainName, procRunner), 0o600))
	runLeash(b, leash, "--data-dir", dataDir, "ca", "init", "--name", "Bench", "--insecure-no-password")
	token := strings.TrimSpace(runLeash(b, leash, "--data-dir", dataDir, "token", "create", "--name", procRunner))

	api, enroll, public := freeAddr(b), freeAddr(b), freeAddr(b)
	echoAddr, httpAddr, sinkAddr := freeAddr(b), freeAddr(b), freeAddr(b)
	p.gateway = startProcess(b, tmp, "gateway", nil, pin, leash, "--data-dir", dataDir, "gateway", "serve",
		"--mode", "mtls", "--listen", api, "--enroll-listen", enroll, "--public-listen", public,
		"--domains-dir", domainsDir, "--log-level", "warn",
		"--expose", echoAddr+"="+procRunner+"/echo", "--expose", httpAddr+"="+procRunner+"/http",
		"--expose", sinkAddr+"="+procRunner+"/sink")
	for _, addr := range []string{api, enroll} {
		p.eventually(b, 30*time.Second, "gateway listening on "+addr, func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = c.Close()
			}
			return err == nil
		})
	}

	cfg := filepath.Join(tmp, "runner.yaml")
	must(b, os.WriteFile(cfg, fmt.Appendf(nil, `name: %s
gateway: https://%s
enroll_url: https://%s
state_dir: %s
log_level: warn
session_ports: []
services: {echo: "%s", http: "%s", sink: "%s"}
domains:
  %s:
    - {target: "http://%s"}
`, procRunner, api, enroll, filepath.Join(tmp, "runner-state"), echoSvc, httpSvc, sinkSvc, domainName, httpSvc), 0o600))
	p.runner = startProcess(b, tmp, "runner", []string{"LEASH_TOKEN=" + token}, pin, runnerBin, "-config", cfg)

	p.echo, p.sink = echoAddr, sinkAddr
	p.service = newHTTPLoad(b, httpAddr)
	p.domain = newDomainLoad(b, "http://"+domainName+"/bench", public, nil)
	body := bytes.Repeat([]byte("q"), httpBodySize)
	p.eventually(b, 60*time.Second, "echo through the exposed port", func() bool { return echoOnce(p.echo) == nil })
	p.eventually(b, 30*time.Second, "1 KiB answer through the exposed http port", func() bool { return p.service.do(body) == nil })
	p.eventually(b, 30*time.Second, "1 KiB answer through "+domainName, func() bool { return p.domain.do(body) == nil })
	return p
}

// eventually polls cond until it holds, as testharness.Eventually does,
// and fails with the processes' logs when timeout passes or one of them
// has exited.
func (p *procRig) eventually(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for wait := 5 * time.Millisecond; ; wait = min(wait*2, 200*time.Millisecond) {
		for _, proc := range []*benchProcess{p.gateway, p.runner} {
			if proc != nil {
				proc.checkRunning(b)
			}
		}
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			logs := p.gateway.tail()
			if p.runner != nil {
				logs += "\n" + p.runner.tail()
			}
			b.Fatalf("timed out after %s waiting for: %s\n%s", timeout, what, logs)
		}
		time.Sleep(wait) // between polls
	}
}

// streamsRound opens idleStreams echo connections through the gateway,
// samples both processes before and with them open, closes them and
// waits until the echo service saw all of them end.
func (p *procRig) streamsRound(b *testing.B) (gw, rn, gw0, rn0 procMem) {
	b.Helper()
	b.StopTimer()
	gw0, rn0 = p.sample(b)
	conns := make([]net.Conn, 0, idleStreams)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
		testharness.Eventually(b, 30*time.Second, "idle streams closed at the echo service", func() bool {
			return p.echoOpen.Load() == 0
		})
	}()
	b.StartTimer()
	openIdleEchoes(b, p.echo, &conns)
	b.StopTimer()
	gw, rn = p.sample(b)
	return gw, rn, gw0, rn0
}

func (p *procRig) sample(b *testing.B) (gw, rn procMem) {
	b.Helper()
	return p.gateway.mem(b), p.runner.mem(b)
}

// peaks runs load while sampling both processes every procSampleEvery and
// returns the highest VmRSS of each. The timer runs only during load.
func (p *procRig) peaks(b *testing.B, load func()) (gw, rn uint64) {
	b.Helper()
	b.ResetTimer()
	for range b.N {
		stop, done := make(chan struct{}), make(chan struct{})
		var sampleErr error
		go func() {
			defer close(done)
			t := time.NewTicker(procSampleEvery)
			defer t.Stop()
			for {
				g, err1 := readProcMem(p.gateway.cmd.Process.Pid)
				r, err2 := readProcMem(p.runner.cmd.Process.Pid)
				if sampleErr = errors.Join(err1, err2); sampleErr != nil {
					return
				}
				gw, rn = max(gw, g.rss), max(rn, r.rss)
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		load()
		close(stop)
		<-done
		if sampleErr != nil {
			b.Fatal(sampleErr)
		}
	}
	b.StopTimer()
	return gw, rn
}

// procMem is one sample of /proc/<pid>/status, in bytes.
type procMem struct{ rss, hwm uint64 }

func readProcMem(pid int) (procMem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, err
	}
	defer func() { _ = f.Close() }()
	var m procMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		var dst *uint64
		switch key {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.hwm
		default:
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/%d/status %s: %w", pid, key, err)
		}
		*dst = kb << 10
	}
	if m.rss == 0 || m.hwm == 0 {
		return m, fmt.Errorf("/proc/%d/status: no VmRSS/VmHWM (%v)", pid, sc.Err())
	}
	return m, nil
}

// benchProcess is a child process whose output goes to a log file, shown
// when the benchmark fails.
type benchProcess struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{} // closed when the process has exited
	err       error         // Wait's result, set before done closes
}

// startProcess runs bin with args and the environment of this process
// minus every LEASH_* variable, plus env; with pin (a CPU list) under
// taskset -c pin, which execs bin in the same process. b's cleanup sends
// SIGTERM and waits (procStopWait, then SIGKILL and a failure).
func startProcess(b *testing.B, dir, name string, env []string, pin, bin string, args ...string) *benchProcess {
	b.Helper()
	p := &benchProcess{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		b.Fatal(err)
	}
	if pin != "" {
		bin, args = "taskset", append([]string{"-c", pin, bin}, args...)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.Env = append(cleanEnv(), env...)
	if err := p.cmd.Start(); err != nil {
		_ = out.Close()
		b.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	b.Cleanup(func() { p.stop(b) })
	return p
}

func (p *benchProcess) stop(b *testing.B) {
	select {
	case <-p.done:
		b.Errorf("%s exited early: %v\n%s", p.name, p.err, p.tail())
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			b.Errorf("%s after SIGTERM: %v\n%s", p.name, p.err, p.tail())
		}
	case <-time.After(procStopWait):
		_ = p.cmd.Process.Kill()
		<-p.done
		b.Errorf("%s did not exit within %s of SIGTERM; killed\n%s", p.name, procStopWait, p.tail())
	}
}

func (p *benchProcess) checkRunning(b *testing.B) {
	b.Helper()
	select {
	case <-p.done:
		b.Fatalf("%s exited: %v\n%s", p.name, p.err, p.tail())
	default:
	}
}

func (p *benchProcess) mem(b *testing.B) procMem {
	b.Helper()
	p.checkRunning(b)
	m, err := readProcMem(p.cmd.Process.Pid)
	if err != nil {
		b.Fatalf("%s: %v", p.name, err)
	}
	return m
}

// tail is the end of the process's log.
func (p *benchProcess) tail() string {
	out, _ := os.ReadFile(p.log)
	if len(out) > 4096 {
		out = out[len(out)-4096:]
	}
	return p.name + " log:\n" + string(out)
}

// buildStripped builds ./cmd/<name> as make build does (-trimpath,
// -ldflags='-s -w') into dir and returns the binary's path. go test puts
// its toolchain's bin first in PATH; a compiled test binary uses the go
// found in PATH.
func buildStripped(b *testing.B, dir, name string) string {
	b.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Fatalf("the go command is needed to build %s: %v", name, err)
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/leashpki/leash/cmd/"+name)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	return bin
}

// runLeash runs one leash CLI command to completion and returns its
// standard output.
func runLeash(b *testing.B, bin string, args ...string) string {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("leash %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// cleanEnv is this process's environment without LEASH_* variables: the
// runner refuses unknown ones, and none may change the gateway's settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEASH_") {
			env = append(env, kv)
		}
	}
	return env
}

// freeAddr returns a loopback address that was free a moment ago: bound
// to port 0 and closed. Another process could take it in between.
// freeAddr finds a free loopback port for a child process to listen on.
// It picks below the kernel's ephemeral range: a port from that range,
// once released, can be taken by one of the thousands of client
// connections the benchmarks make before the child binds it.
func freeAddr(b *testing.B) string {
	b.Helper()
	low := 32768
	if r, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(r)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 11000 {
				low = n
			}
		}
	}
	for range 100 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(10000+rand.IntN(low-10000)))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken
		}
		_ = ln.Close()
		return addr
	}
	b.Fatalf("no free port below %d on 127.0.0.1 in 100 tries", low)
	return ""
}

func fileSize(b *testing.B, path string) int64 {
	b.Helper()
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

func must(b *testing.B, errs ...error) {
	b.Helper()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
}
