package e2edocker

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/cli"
	"github.com/leashpki/leash/internal/testdocker"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
	"github.com/leashpki/leash/runner/dockerproxy"
)

func TestMain(m *testing.M) { os.Exit(testdocker.Run(m)) }

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDockerThroughTheGateway: the real docker CLI lists and inspects the
// runner's containers through 'leash docker' (gateway, tunnel, the
// runner's filter, a real dockerd); writes are refused and nothing
// changes; the gateway lists the discovered containers.
func TestDockerThroughTheGateway(t *testing.T) {
	engine := testdocker.Start(t)
	ctr := engine.StartContainer(t, testdocker.ContainerSpec{Env: []string{"SECRET=hunter2"}, Labels: map[string]string{"app": "shop"}})

	h := testharness.New(t, testharness.Options{})
	gw := h.StartGateway(t)
	r := h.StartRunner(t, gw, "docker-host", testharness.RunnerOptions{Docker: &dockerproxy.Config{Socket: engine.Socket}})
	testharness.Eventually(t, 10*time.Second, "tunnel", func() bool { return r.Agent.Tunnels() == 1 && r.Agent.Sessions() == 1 })
	op := h.Client(t, ca.ProfileOperator, "alice")

	var list protocol.ContainerList
	if status := op.Do(t, http.MethodGet, gw.APIURL+"/v1/runners/docker-host/containers", nil, &list); status != http.StatusOK ||
		len(list.Containers) != 1 || list.Containers[0].Names[0] != ctr.Name || list.Containers[0].Labels["app"] != "shop" {
		t.Fatalf("discovered containers: %d %+v", status, list)
	}

	cfg := filepath.Join(t.TempDir(), "config.yaml")
	var out, errOut syncBuffer
	if code := cli.Run(context.Background(), cli.Env{Stdout: &out, Stderr: &errOut}, []string{"leash", "login", "--config", cfg,
		"--cert", op.CertFile, "--key", op.KeyFile, "--ca", op.CAFile, gw.APIURL}); code != 0 {
		t.Fatalf("login: %s", errOut.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	sock := filepath.Join(t.TempDir(), "docker.sock")
	go func() {
		done <- cli.Run(ctx, cli.Env{Stdout: &out, Stderr: &errOut}, []string{"leash", "docker", "--config", cfg, "--local", sock, "docker-host"})
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("leash docker did not stop")
		}
	}()
	testharness.Eventually(t, 10*time.Second, "leash docker listening", func() bool { return strings.Contains(out.String(), "DOCKER_HOST=unix://"+sock) })

	docker := func(args ...string) (string, error) { return testdocker.RunCLI(t, sock, args...) }
	if ps, err := docker("ps", "-a", "--format", "{{.Names}} {{.Status}}"); err != nil || !strings.Contains(ps, ctr.Name) {
		t.Fatalf("docker ps through the gateway: %q %v", ps, err)
	}
	inspect, err := docker("inspect", ctr.Name)
	if err != nil || !strings.Contains(inspect, "SECRET=") || strings.Contains(inspect, "hunter2") {
		t.Fatalf("docker inspect through the gateway (Env must be redacted): %v\n%s", err, inspect)
	}
	for _, args := range [][]string{
		{"rm", "-f", ctr.Name},
		{"exec", ctr.Name, "/sleeper"},
		{"stop", ctr.Name},
		{"run", "--rm", engine.Image(t)},
		{"export", ctr.Name},
	} {
		if got, err := docker(args...); err == nil {
			t.Errorf("docker %s went through: %s", strings.Join(args, " "), got)
		}
	}
	// Nothing changed behind the filter.
	if ps, err := engine.CLI(t, "ps", "--format", "{{.Names}}"); err != nil || !strings.Contains(ps, ctr.Name) {
		t.Fatalf("the container is gone or stopped: %q %v", ps, err)
	}
}
