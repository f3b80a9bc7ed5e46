// Package testdocker gives a test a real Docker Engine: a dockerd of its
// own, started for the test binary, with the real docker CLI pointed at
// it, and a test image to run containers from.
//
// The engine is a throwaway: its data root, exec root, pid file, config
// file and unix socket all live in one new temporary directory
// (leash-testdocker-*), it has no networking (--bridge=none,
// --iptables=false, --ip6tables=false; containers run with network mode
// none), reads no /etc/docker/daemon.json, and keeps its containers in a
// containerd namespace of its own (dockerd starts a containerd of its own
// under the exec root, but uses the machine's when
// /run/containerd/containerd.sock exists), so it does not meet a Docker
// already installed on the machine or the engine of another test binary
// running at the same time. It uses overlay2 where the kernel has
// overlayfs (dockerd falls back to vfs by itself when the temporary
// directory cannot hold overlay mounts) and vfs where it does not;
// LEASH_TEST_DOCKER_STORAGE_DRIVER forces a driver.
//
// The first Start starts the engine and waits for /_ping to answer; the
// tests of the binary share it, and Run stops it (SIGTERM, then a wait)
// and removes its files when they end, so a package whose tests use it
// runs them through Run:
//
//	func TestMain(m *testing.M) { os.Exit(testdocker.Run(m)) }
//
// Measured on a 2-core VM (dockerd 20.10.24, containerd 1.6, runc 1.1,
// overlay2 on ext4, cgroup v1): dockerd answers /_ping 0.35 to 0.9 s after
// it is started (usually about 0.5 s) and stops in 1.0 to 1.3 s; building
// the test image takes about 1 s with a warm Go build cache (compiling the
// sleeper is most of it); a container is created and started in 0.7 to
// 1.1 s (runc's start dominates) and force-removed in about 0.3 s. With
// vfs the first container takes about 1 s longer. The engine is shared
// by the tests of a binary, so a package pays its start once.
//
// The image is built FROM scratch around one static Go binary (package
// sleeper), so no image is ever pulled: the tests need no network and no
// registry.
//
// dockerd must run as root; when it cannot (not installed, not root), the
// test is skipped, or fails in CI (CI=true), through testenv.Missing. A
// test binary that dies without returning from Run (a panic, a -timeout)
// leaves its engine running: its pid is in leash-testdocker-*/docker.pid.
package testdocker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testenv"
)

// EnvStorageDriver names the environment variable that forces the
// engine's storage driver (overlay2, vfs, ...).
const EnvStorageDriver = "LEASH_TEST_DOCKER_STORAGE_DRIVER"

// opTimeout bounds each administrative step: starting or stopping the
// engine, building the image, creating or removing a container.
const opTimeout = 2 * time.Minute

// Engine is a running Docker Engine.
type Engine struct {
	// Socket is the path of the engine's unix socket.
	Socket string

	d      *daemon
	client *http.Client

	imageMu  sync.Mutex
	image    string // tag of the test image, once built
	imageErr error  // why building it failed; every later Image reports it
}

// local is the engine of this test binary, and the package's only mutable
// state. The first Start that needs the engine starts it and Run, which
// alone knows when the last test has ended, stops it. mu guards every
// field.
var local struct {
	mu      sync.Mutex
	managed bool    // Run is active and will stop the engine
	e       *Engine // nil until started
	err     error   // why starting failed; every later Start reports it
}

// Run runs the package's tests and then stops the engine, if one was
// started, and removes its files. It returns m.Run's exit code, or 1 when
// the tests passed but the engine could not be stopped cleanly.
func Run(m *testing.M) int {
	local.mu.Lock()
	local.managed = true
	local.mu.Unlock()

	code := m.Run()

	local.mu.Lock()
	defer local.mu.Unlock()
	local.managed = false
	if local.e != nil {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		local.e.client.CloseIdleConnections()
		began := time.Now()
		if err := local.e.d.stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "testdocker: %v\n", err)
			if code == 0 {
				code = 1
			}
		} else {
			fmt.Fprintf(os.Stderr, "testdocker: dockerd stopped in %v\n", time.Since(began).Round(time.Millisecond))
		}
		local.e = nil
	}
	local.err = nil
	return code
}

// Start returns the test binary's engine, starting it on first use. When
// no engine can run here it skips t, or fails it in CI.
func Start(t testing.TB) *Engine {
	t.Helper()
	e, err := sharedEngine()
	var missing *unavailableError
	switch {
	case errors.As(err, &missing):
		testenv.Missing(t, "a Docker Engine: "+missing.reason)
	case err != nil:
		t.Fatalf("testdocker: %v", err)
	}
	return e
}

// sharedEngine returns the binary's engine, starting it on first use.
func sharedEngine() (*Engine, error) {
	local.mu.Lock()
	defer local.mu.Unlock()
	if !local.managed {
		return nil, errors.New("a throwaway Docker Engine needs testdocker.Run to stop it: add " +
			"func TestMain(m *testing.M) { os.Exit(testdocker.Run(m)) } to the package's tests")
	}
	if local.e == nil && local.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		d, err := startDaemon(ctx)
		if err != nil {
			local.err = err
		} else {
			local.e = &Engine{Socket: d.socket, d: d, client: unixClient(d.socket)}
			fmt.Fprintf(os.Stderr, "testdocker: dockerd (%s storage) ready in %v\n",
				d.storage, d.startup.Round(time.Millisecond))
		}
	}
	return local.e, local.err
}

// StartupTime is how long the engine took from exec to answering /_ping.
func (e *Engine) StartupTime() time.Duration { return e.d.startup }

// Client returns an HTTP client that reaches the engine's API through its
// socket, whatever host a request URL names (use http://docker/...).
func (e *Engine) Client() *http.Client { return e.client }

// Request sends one API request to the engine, e.g.
// e.Request(ctx, "GET", "/containers/json", nil).
func (e *Engine) Request(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, body)
	if err != nil {
		return nil, fmt.Errorf("docker API %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("docker API %s %s: %w", method, path, err)
	}
	return resp, nil
}

// CLI runs the real docker CLI against the engine and returns its
// standard output; the error carries the exit status and standard error.
func (e *Engine) CLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return RunCLI(t, e.Socket, args...)
}

// unixClient returns an HTTP client whose every connection dials the unix
// socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
	}}
}
