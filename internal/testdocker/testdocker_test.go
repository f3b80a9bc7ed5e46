package testdocker

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Run(m)) }

func TestStartIsSharedAndAnswers(t *testing.T) {
	e := Start(t)
	if again := Start(t); again != e {
		t.Errorf("a second Start gave another engine")
	}
	t.Logf("dockerd answered /_ping %v after it was started", e.StartupTime())
	if !strings.HasPrefix(e.Socket, os.TempDir()) {
		t.Errorf("socket %s is outside the temporary directory", e.Socket)
	}
	out, err := e.CLI(t, "version", "--format", "{{.Server.Version}}")
	if err != nil {
		t.Fatalf("docker version: %v", err)
	}
	if strings.TrimSpace(out) == "" {
		t.Errorf("docker version printed no server version")
	}
	// The engine is alone: no containers or images but the ones tests make.
	out, err = e.CLI(t, "ps", "-a", "--format", "{{.Names}}")
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	for _, name := range strings.Fields(out) {
		if !strings.HasPrefix(name, "leash-test-") {
			t.Errorf("the engine runs a container %s that no test made", name)
		}
	}
}

func TestContainerRunsWithEnvAndIsRemoved(t *testing.T) {
	e := Start(t)
	var c Container
	t.Run("run", func(t *testing.T) {
		began := time.Now()
		c = e.StartContainer(t, ContainerSpec{Env: []string{"SECRET=hunter2"}, Labels: map[string]string{"app": "x"}})
		t.Logf("image and container ready in %v", time.Since(began))

		out, err := e.CLI(t, "inspect", "--format", "{{json .Config.Env}} {{.State.Running}} {{index .Config.Labels \"app\"}}", c.Name)
		if err != nil {
			t.Fatalf("docker inspect: %v", err)
		}
		// The engine itself hides nothing: the proxy tests rely on this
		// to show that redaction is the proxy's doing.
		if !strings.Contains(out, "SECRET=hunter2") || !strings.Contains(out, "true x") {
			t.Errorf("docker inspect = %q, want the env, running and the label", out)
		}
		// The sleeper prints once it runs, a moment after start returns.
		deadline := time.After(30 * time.Second)
		poll := time.NewTicker(50 * time.Millisecond)
		defer poll.Stop()
		for {
			out, err = e.CLI(t, "logs", c.ID)
			if err == nil && strings.Contains(out, "sleeper ready") {
				break
			}
			select {
			case <-deadline:
				t.Fatalf("docker logs never showed the sleeper starting: %q, %v", out, err)
			case <-poll.C:
			}
		}
		if strings.Contains(out, "hunter2") {
			t.Errorf("the sleeper printed its secret: %q", out)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := e.Request(ctx, http.MethodGet, "/containers/"+c.ID+"/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("container %s after its test ended: %s, want 404", c.Name, resp.Status)
	}
}

func TestImageIsFromScratch(t *testing.T) {
	e := Start(t)
	tag := e.Image(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	resp, err := e.Request(ctx, http.MethodGet, "/images/"+tag+"/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var img struct {
		RootFS struct{ Layers []string }
		Config struct{ Entrypoint []string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&img); err != nil {
		t.Fatalf("%s: %v", resp.Status, err)
	}
	if len(img.RootFS.Layers) != 1 || strings.Join(img.Config.Entrypoint, " ") != "/sleeper" {
		t.Errorf("image %s: %d layers, entrypoint %q; want one layer and /sleeper", tag, len(img.RootFS.Layers), img.Config.Entrypoint)
	}
}

func TestStorageDriver(t *testing.T) {
	tests := []struct {
		env  string
		want string // "" means overlay2-or-vfs by the kernel
	}{
		{"vfs", "vfs"},
		{"overlay2", "overlay2"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run("env="+tt.env, func(t *testing.T) {
			t.Setenv(EnvStorageDriver, tt.env)
			got := storageDriver()
			if tt.want != "" && got != tt.want {
				t.Errorf("storageDriver() = %q, want %q", got, tt.want)
			}
			if tt.want == "" && got != "default" && got != "vfs" {
				t.Errorf("storageDriver() = %q, want default or vfs", got)
			}
		})
	}
}

func TestCLIEnvDropsCallerDockerSettings(t *testing.T) {
	t.Setenv("DOCKER_CONTEXT", "elsewhere")
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	env := cliEnv("unix:///x.sock", "/cfg")
	var hosts []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "DOCKER_CONTEXT=") || strings.HasPrefix(kv, "DOCKER_TLS_VERIFY=") {
			t.Errorf("the CLI would see %s", kv)
		}
		if strings.HasPrefix(kv, "DOCKER_HOST=") {
			hosts = append(hosts, kv)
		}
	}
	if len(hosts) != 1 || hosts[0] != "DOCKER_HOST=unix:///x.sock" {
		t.Errorf("DOCKER_HOST settings %q", hosts)
	}
}
