// Package testenv finds the real third-party parts tests run against
// (openssl, curl, PostgreSQL, ...). Outside CI a missing part skips the
// test with a message saying what to install; in CI (CI=true) it fails it,
// because a skipped interoperability test proves nothing.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true or CI=1).
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// RequireTool returns the path of an executable on $PATH. When it is
// missing the test fails in CI and is skipped elsewhere.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	Missing(t, name+" is not installed (Debian package "+debianPackage+")")
	return ""
}

// Missing reports a missing real part: fatal in CI, a skip elsewhere.
func Missing(t testing.TB, what string) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI requires %s", what)
	}
	t.Skipf("skipping: %s; CI installs it", what)
}
