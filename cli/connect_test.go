package cli_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/cli"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// TestConnectForwardsAService: 'leash connect' listens locally and carries
// each connection to a runner's declared service through the gateway; a
// service the runner does not declare is refused before listening.
func TestConnectForwardsAService(t *testing.T) {
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Close() }()
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				line, _ := bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, "hello "+line)
			}()
		}
	}()
	h := testharness.New(t, testharness.Options{})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "web-1", testharness.RunnerOptions{Services: map[string]string{"greeter": svc.Addr().String()}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 && r.Agent.Sessions() == 1 })

	dir := t.TempDir()
	op := h.Client(t, ca.ProfileOperator, "alice")
	cfg := filepath.Join(dir, "config.yaml")
	mustLeash(t, "login", "--config", cfg, "--cert", op.CertFile, "--key", op.KeyFile, "--ca", op.CAFile, gw.APIURL)

	if code, _, errOut := leash(t, "connect", "--config", cfg, "web-1", "metadata"); code == 0 || !strings.Contains(errOut, "declares no service") {
		t.Fatalf("undeclared service: exit %d %s", code, errOut)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, cli.Env{Stdout: &out, Stderr: &errOut}, []string{"leash", "connect", "--config", cfg, "web-1", "greeter"})
	}()
	var addr string
	testharness.Eventually(t, 10*time.Second, "forwarding line", func() bool {
		f := strings.Fields(out.String())
		if len(f) > 1 && f[0] == "forwarding" {
			addr = f[1]
			return true
		}
		return false
	})
	for _, name := range []string{"ann", "bob"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, name+"\n")
		got, err := io.ReadAll(c)
		_ = c.Close()
		if err != nil || string(got) != "hello "+name+"\n" {
			t.Fatalf("through leash connect: %q %v", got, err)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("leash connect exit %d: %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("leash connect did not stop")
	}
	_ = os.Remove(cfg)
}

// TestConnectSessionPort: 'leash connect --port' opens an operator session
// for a port of the runner's host, forwards to it, and leaves the session
// when it stops (ending it, as the last operator).
func TestConnectSessionPort(t *testing.T) {
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Close() }()
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_, _ = io.WriteString(c, "SSH-2.0-test\r\n")
			}()
		}
	}()
	port := svc.Addr().(*net.TCPAddr).Port
	h := testharness.New(t, testharness.Options{})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "web-1", testharness.RunnerOptions{SessionPorts: []int{port}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 && r.Agent.Sessions() == 1 })
	op := h.Client(t, ca.ProfileOperator, "alice")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	mustLeash(t, "login", "--config", cfg, "--cert", op.CertFile, "--key", op.KeyFile, "--ca", op.CAFile, gw.APIURL)

	if code, _, errOut := leash(t, "connect", "--config", cfg, "--port", "22", "web-1"); code == 0 || !strings.Contains(errOut, "not allowed") {
		t.Fatalf("port 22 not in session_ports: exit %d %s", code, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, cli.Env{Stdout: &out, Stderr: &errOut}, []string{"leash", "connect", "--config", cfg,
			"--port", strconv.Itoa(port), "--idle", "1m", "web-1"})
	}()
	var addr string
	testharness.Eventually(t, 10*time.Second, "forwarding line", func() bool {
		f := strings.Fields(out.String())
		if len(f) > 1 && f[0] == "forwarding" {
			addr = f[1]
			return true
		}
		return false
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	banner, _ := bufio.NewReader(c).ReadString('\n')
	_ = c.Close()
	if banner != "SSH-2.0-test\r\n" {
		t.Fatalf("through the session: %q", banner)
	}
	status := func() protocol.SessionStatus {
		var st protocol.SessionStatus
		op.Do(t, "GET", gw.APIURL+"/v1/tunnel/status?runner=web-1", nil, &st)
		return st
	}
	if st := status(); !st.Up || st.Session.IdleTimeout.D() != time.Minute {
		t.Fatalf("session status: %+v", st)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("leash connect did not stop")
	}
	if st := status(); st.Up {
		t.Fatalf("session still up after its only operator left: %+v", st)
	}
}
