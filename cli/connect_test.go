package cli_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/cli"
	"github.com/leashpki/leash/internal/testharness"
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
