package testdocker

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/leashpki/leash/internal/testenv"
)

// RunCLI runs the real docker CLI against the API served on the unix
// socket at socket (an engine's, or a proxy's in front of one) and returns
// its standard output. The error, when the CLI fails, carries its exit
// status and standard error, where the CLI prints the daemon's message.
//
// The CLI gets -H unix://<socket> and the same DOCKER_HOST, a fresh
// DOCKER_CONFIG (no credential helpers, contexts or plugins from the
// user's ~/.docker), and none of the caller's other DOCKER_* settings.
func RunCLI(t testing.TB, socket string, args ...string) (string, error) {
	t.Helper()
	bin := testenv.RequireTool(t, "docker", "docker.io")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	host := "unix://" + socket
	cmd := exec.CommandContext(ctx, bin, append([]string{"-H", host}, args...)...)
	cmd.Env = cliEnv(host, t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// cliEnv returns the environment for the docker CLI: the caller's without
// DOCKER_* variables, plus the host, an empty config directory and no
// BuildKit (the legacy builder needs no buildx plugin).
func cliEnv(host, configDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	return append(env, "DOCKER_HOST="+host, "DOCKER_CONFIG="+configDir, "DOCKER_CLI_HINTS=false", "DOCKER_BUILDKIT=0")
}
