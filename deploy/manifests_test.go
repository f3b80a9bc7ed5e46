package deploy

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/leashpki/leash/cli"
	"github.com/leashpki/leash/runner"
)

// gatewayEnv returns the LEASH_* variables 'leash gateway serve' reads:
// its flags' and the global ones, from the CLI itself.
func gatewayEnv(t *testing.T) []string {
	t.Helper()
	app := cli.NewApp(cli.Env{Stdout: io.Discard, Stderr: io.Discard})
	flags := slices.Clone(app.Flags)
	for _, c := range app.Commands {
		if c.Name == "gateway" {
			for _, s := range c.Subcommands {
				if s.Name == "serve" {
					flags = append(flags, s.Flags...)
				}
			}
		}
	}
	var env []string
	for _, f := range flags {
		if e, ok := f.(interface{ GetEnvVars() []string }); ok {
			env = append(env, e.GetEnvVars()...)
		}
	}
	if !slices.Contains(env, "LEASH_LISTEN") || !slices.Contains(env, "LEASH_DATA_DIR") {
		t.Fatalf("gateway serve's variables not found in the CLI: %v", env)
	}
	return env
}

// checkGatewayEnv fails for a LEASH_* variable the gateway does not read.
func checkGatewayEnv(t *testing.T, where string, env map[string]string) {
	t.Helper()
	known := gatewayEnv(t)
	for k := range env {
		if strings.HasPrefix(k, "LEASH_") && !slices.Contains(known, k) {
			t.Errorf("%s: the gateway reads no %s", where, k)
		}
	}
}

// checkRunnerEnv loads a runner's environment as the runner does: unknown
// LEASH_* variables are refused there, so they are here.
func checkRunnerEnv(t *testing.T, where string, env map[string]string, validate bool) {
	t.Helper()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg, err := runner.LoadConfig(nil, environ, io.Discard)
	if err == nil && validate {
		err = cfg.Validate()
	}
	if err != nil {
		t.Errorf("%s: runner environment: %v", where, err)
	}
}

// interpolate applies Compose's ${VAR}, ${VAR:-default} and ${VAR:?err}
// with no variables set: defaults, or "x" where one is required.
func interpolate(s string) string {
	re := regexp.MustCompile(`\$\{[A-Z_]+(?::?([-?])([^}]*))?\}`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		sub := re.FindStringSubmatch(m)
		switch sub[1] {
		case "-":
			return sub[2]
		case "?":
			return "x"
		}
		return ""
	})
}

type composeFile struct {
	Name     string `yaml:"name"`
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Profiles    []string          `yaml:"profiles"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Ports       []string          `yaml:"ports"`
		ReadOnly    bool              `yaml:"read_only"`
		CapDrop     []string          `yaml:"cap_drop"`
		SecurityOpt []string          `yaml:"security_opt"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

// TestCompose: compose.yaml parses, has the gateway on PostgreSQL and a
// runner configured as in the Orthrus seed (environment only, the Docker
// socket read-only, no ports), hardened leash containers, declared named
// volumes and secrets, and only LEASH_* variables the binaries read.
// docker compose config (or docker-compose) checks it too where present.
func TestCompose(t *testing.T) {
	raw, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal([]byte(interpolate(string(raw))), &f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, name := range []string{"postgres", "gateway", "runner", "nginx", "oauth2-proxy"} {
		s, ok := f.Services[name]
		if !ok || s.Image == "" {
			t.Errorf("service %s missing or without image", name)
		}
	}
	gw, rn := f.Services["gateway"], f.Services["runner"]
	checkGatewayEnv(t, "compose gateway", gw.Environment)
	if !strings.HasPrefix(gw.Environment["LEASH_DATABASE_URL"], "postgres://") {
		t.Errorf("gateway: LEASH_DATABASE_URL %q is not PostgreSQL", gw.Environment["LEASH_DATABASE_URL"])
	}
	renv := maps.Clone(rn.Environment)
	renv["LEASH_TOKEN"] = "placeholder" // given at the first start
	delete(renv, "LEASH_CONFIG")        // a file next to compose.yaml, checked below
	checkRunnerEnv(t, "compose runner", renv, true)
	if rn.Environment["LEASH_GATEWAY"] != "https://gateway:8443" {
		t.Errorf("runner: LEASH_GATEWAY %q", rn.Environment["LEASH_GATEWAY"])
	}
	if len(rn.Ports) != 0 {
		t.Errorf("runner publishes ports %v: it only dials out", rn.Ports)
	}
	for _, want := range []struct {
		svc   string
		mount string
	}{
		{"runner", "/var/run/docker.sock:/var/run/docker.sock:ro"},
		{"runner", "runner-state:/var/lib/leash-runner"},
		{"runner", "./runner.yaml:/etc/leash/runner.yaml:ro"},
		{"gateway", "gateway-data:/var/lib/leash"},
		{"postgres", "postgres-data:/var/lib/postgresql/data"},
	} {
		if !slices.Contains(f.Services[want.svc].Volumes, want.mount) {
			t.Errorf("%s: no volume %s", want.svc, want.mount)
		}
		if src, _, _ := strings.Cut(want.mount, ":"); !strings.HasPrefix(src, "/") && !strings.HasPrefix(src, ".") {
			if _, ok := f.Volumes[src]; !ok {
				t.Errorf("named volume %s is not declared", src)
			}
		}
	}
	for _, name := range []string{"gateway", "runner"} {
		s := f.Services[name]
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: want read_only, cap_drop ALL and no-new-privileges", name)
		}
	}
	for _, p := range gw.Ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("gateway port %q: publish on 127.0.0.1 by default", p)
		}
	}
	if f.Secrets["ca-password"].File == "" {
		t.Error("secret ca-password is not declared")
	}
	// The runner's config file loads as the runner loads it.
	checkRunnerEnv(t, "compose/runner.yaml", map[string]string{"LEASH_CONFIG": "compose/runner.yaml",
		"LEASH_NAME": "x", "LEASH_GATEWAY": "https://gateway:8443"}, true)

	composeConfig(t)
}

// composeConfig runs the real Compose's validation when it is installed
// (the plugin or docker-compose). It is optional: Debian's docker.io ships
// neither, and the structural checks above stand on their own.
func composeConfig(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, "compose/compose.yaml", filepath.Join(dir, "compose.yaml"), 0o644)
	copyFile(t, "compose/runner.yaml", filepath.Join(dir, "runner.yaml"), 0o644)
	env := []string{"POSTGRES_PASSWORD=x", "DOCKER_CONFIG=" + dir}
	var tried []string
	for _, argv := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		if _, err := exec.LookPath(argv[0]); err != nil {
			tried = append(tried, argv[0]+": not installed")
			continue
		}
		args := append(argv[1:], "-f", "compose.yaml", "--profile", "ui", "config", "-q")
		out, err := runErr(dir, env, argv[0], args...)
		var ee *exec.ExitError
		if err != nil && errors.As(err, &ee) && bytes.Contains([]byte(out), []byte("unknown")) && len(argv) == 2 {
			tried = append(tried, "docker compose: no compose plugin") // "unknown command"
			continue
		}
		if err != nil {
			t.Fatalf("%s config: %v\n%s", strings.Join(argv, " "), err, out)
		}
		t.Logf("%s config: valid", strings.Join(argv, " "))
		return
	}
	t.Logf("compose.yaml checked structurally only (%s)", strings.Join(tried, "; "))
}

// readEnvFile parses KEY=VALUE lines, skipping comments and blank lines.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	return env
}

// TestEnvExamples: the systemd environment files and the images' ENV
// lines name only variables the binaries read, and the runner's example
// is a valid configuration.
func TestEnvExamples(t *testing.T) {
	checkRunnerEnv(t, "systemd/runner.env.example", readEnvFile(t, "systemd/runner.env.example"), true)
	checkGatewayEnv(t, "systemd/gateway.env.example", readEnvFile(t, "systemd/gateway.env.example"))
	for _, df := range []string{"docker/gateway.Dockerfile", "docker/runner.Dockerfile", "docker/multistage.Dockerfile"} {
		b, err := os.ReadFile(df)
		if err != nil {
			t.Fatal(err)
		}
		// ENV a=b \ c=d: join continuation lines, then read the pairs.
		text := strings.ReplaceAll(string(b), "\\\n", " ")
		for _, line := range strings.Split(text, "\n") {
			rest, ok := strings.CutPrefix(line, "ENV ")
			if !ok {
				continue
			}
			env := map[string]string{}
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			if _, ok := env["LEASH_STATE_DIR"]; ok {
				checkRunnerEnv(t, df, env, false)
			} else {
				checkGatewayEnv(t, df, env)
			}
		}
	}
}
