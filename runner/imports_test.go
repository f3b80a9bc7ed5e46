package runner

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goTool finds the go command. runtime.GOROOT is deprecated; go test puts
// the GOROOT/bin of the toolchain running the tests first in PATH, so
// looking the command up finds that same toolchain.
func goTool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	return path
}

// The runner is what operators install on remote hosts: it must stay small
// and must not pull in the gateway, the CA or smallstep's libraries.
func TestRunnerDependencies(t *testing.T) {
	out, err := exec.Command(goTool(t), "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", exitStderr(err))
	}
	deps := strings.Fields(string(out))
	forbidden := []string{
		"github.com/leashpki/leash/gateway",
		"github.com/leashpki/leash/ca",
		"github.com/smallstep",
	}
	var sawSelf, sawProtocol bool
	for _, dep := range deps {
		sawSelf = sawSelf || dep == "github.com/leashpki/leash/runner"
		sawProtocol = sawProtocol || dep == "github.com/leashpki/leash/protocol"
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("the runner depends on %s", dep)
			}
		}
	}
	if !sawSelf || !sawProtocol {
		t.Fatalf("go list -deps did not list the runner and protocol packages:\n%s", out)
	}
}

func TestRunnerBinarySize(t *testing.T) {
	const limit = 12 << 20
	bin := filepath.Join(t.TempDir(), "leash-runner")
	cmd := exec.Command(goTool(t), "build", "-trimpath", "-ldflags=-s -w", "-o", bin,
		"github.com/leashpki/leash/cmd/leash-runner")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leash-runner is %.1f MiB (limit %d MiB)", float64(st.Size())/(1<<20), limit>>20)
	if st.Size() > limit {
		t.Errorf("leash-runner is %d bytes, over the %d-byte limit", st.Size(), limit)
	}
}

// exitStderr adds the command's stderr to an exec error.
func exitStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return err.Error() + "\n" + string(ee.Stderr)
	}
	return err.Error()
}
