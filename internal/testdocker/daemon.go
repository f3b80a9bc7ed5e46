package testdocker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// readyTimeout bounds the wait for a started dockerd to answer /_ping.
const readyTimeout = 60 * time.Second

// stopGrace is how long dockerd gets to shut down after SIGTERM before it
// is killed. It stops the containers still running first, and the test
// image's sleeper exits on SIGTERM, so it rarely needs more than a second.
const stopGrace = 30 * time.Second

// unavailableError means no engine can be started here: dockerd is not
// installed, or the tests do not run as root.
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string { return e.reason }

// daemon is a running dockerd.
type daemon struct {
	dir     string        // holds everything the engine writes
	socket  string        // its API socket
	storage string        // the storage driver asked for, or "default"
	startup time.Duration // from exec to the first answered /_ping
	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait has returned
	waitErr error         // cmd.Wait's result, set before exited closes
	log     *os.File
}

// startDaemon starts a dockerd in a new temporary directory and waits
// until it answers. On failure it leaves nothing behind.
func startDaemon(ctx context.Context) (d *daemon, err error) {
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, &unavailableError{"dockerd is not installed (Debian package docker.io)"}
	}
	if os.Geteuid() != 0 {
		return nil, &unavailableError{"dockerd must run as root and the tests do not"}
	}
	// A short directory name: the engine's sockets live under it, and a
	// unix socket path may not exceed 107 bytes.
	dir, err := os.MkdirTemp("", "leash-testdocker-")
	if err != nil {
		return nil, fmt.Errorf("engine directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	config := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(config, []byte("{}\n"), 0o600); err != nil {
		return nil, fmt.Errorf("engine config: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		return nil, fmt.Errorf("engine log: %w", err)
	}
	ns, err := namespace()
	if err != nil {
		_ = logFile.Close()
		return nil, err
	}
	d = &daemon{
		dir:     dir,
		socket:  filepath.Join(dir, "docker.sock"),
		storage: storageDriver(),
		exited:  make(chan struct{}),
		log:     logFile,
	}
	args := []string{
		"--config-file", config,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"--host", "unix://" + d.socket,
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
		// A containerd already running on the machine would be shared;
		// namespaces keep this engine's containers apart from it.
		"--containerd-namespace", ns,
		"--containerd-plugins-namespace", ns + "-plugins",
		"--shutdown-timeout", "5",
	}
	if d.storage != "default" {
		args = append(args, "--storage-driver", d.storage)
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Dir = dir
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	d.cmd.SysProcAttr = ownProcessGroup()
	began := time.Now()
	if err := d.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	readyCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := d.waitReady(readyCtx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		serr := d.stop(stopCtx) // removes dir; read the log first
		return nil, errors.Join(fmt.Errorf("dockerd in %s: %w\ndockerd log:\n%s", dir, err, d.tail()), serr)
	}
	d.startup = time.Since(began)
	return d, nil
}

// waitReady polls /_ping until the engine answers OK, dockerd exits, or
// ctx ends.
func (d *daemon) waitReady(ctx context.Context) error {
	client := unixClient(d.socket)
	defer client.CloseIdleConnections()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(ctx, client)
		if err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("dockerd exited before it answered: %v", d.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("no answer to /_ping: %w (gave up: %w)", err, ctx.Err())
		case <-tick.C:
		}
	}
}

func ping(ctx context.Context, client *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/_ping: %s", resp.Status)
	}
	return nil
}

// stop sends dockerd SIGTERM, waits for it to exit (killing it after
// stopGrace), and removes its directory.
func (d *daemon) stop(ctx context.Context) error {
	var errs []error
	select {
	case <-d.exited:
	default:
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("signal dockerd: %w", err))
		}
		grace := time.NewTimer(stopGrace)
		defer grace.Stop()
		select {
		case <-d.exited:
		case <-grace.C:
			errs = append(errs, fmt.Errorf("dockerd ignored SIGTERM for %v; killed it\ndockerd log:\n%s", stopGrace, d.tail()))
			_ = d.cmd.Process.Kill()
			<-d.exited
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("stop dockerd: %w; killed it", ctx.Err()))
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	}
	if err := d.log.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close dockerd log: %w", err))
	}
	if err := os.RemoveAll(d.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove engine directory (a mount left behind? see /proc/mounts): %w", err))
	}
	return errors.Join(errs...)
}

// tail returns the end of dockerd's log, for error messages.
func (d *daemon) tail() string {
	b, err := os.ReadFile(d.log.Name())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	const keep = 8 << 10
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// storageDriver picks the engine's storage driver: the one forced by
// EnvStorageDriver, vfs when the kernel has no overlayfs, and otherwise
// dockerd's own choice (overlay2, or vfs where the backing filesystem
// cannot hold overlay mounts).
func storageDriver() string {
	if s := os.Getenv(EnvStorageDriver); s != "" {
		return s
	}
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil || !strings.Contains(string(b), "\toverlay\n") {
		return "vfs"
	}
	return "default"
}

// namespace returns a new containerd namespace name for one engine.
func namespace() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random namespace: %w", err)
	}
	return "leash-test-" + hex.EncodeToString(b), nil
}
