package dockerproxy

import (
	"os/exec"
	"strings"
	"testing"
)

// The proxy is part of the runner, which operators install on remote
// hosts: it must not pull in the gateway, the CA or smallstep's libraries.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "-test", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var sawSelf bool
	for _, dep := range strings.Fields(string(out)) {
		sawSelf = sawSelf || dep == "github.com/leashpki/leash/runner/dockerproxy"
		for _, f := range []string{"github.com/leashpki/leash/gateway", "github.com/leashpki/leash/ca", "github.com/smallstep"} {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("the docker proxy depends on %s", dep)
			}
		}
	}
	if !sawSelf {
		t.Fatalf("go list -deps did not list the package:\n%s", out)
	}
}
