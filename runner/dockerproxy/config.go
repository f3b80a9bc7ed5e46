package dockerproxy

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultSocket is the Docker Engine socket used when Config.Socket is
// empty.
const DefaultSocket = "/var/run/docker.sock"

// Config says which engine the proxy fronts and what it lets through
// beyond the read-only default.
type Config struct {
	// Socket is the path of the Docker Engine's unix socket
	// (default DefaultSocket).
	Socket string `yaml:"socket"`
	// AllowLogs lets GET /containers/{id}/logs through. Off by default:
	// what containers print can hold secrets.
	AllowLogs bool `yaml:"allow_logs"`
	// AllowedWrites names the writes let through, as "METHOD pattern",
	// e.g. "POST /containers/{id}/restart". Only the entries of
	// SafeWrites are accepted.
	AllowedWrites []string `yaml:"allowed_writes"`
}

// safeWrites are the only writes a configuration may allow, with the
// query parameters each may carry. They change a container's run state
// and nothing else: no new process in it, no file out of it, no new
// container, image or volume.
var safeWrites = map[string][]string{
	"POST /containers/{id}/restart": {"t", "signal"},
	"POST /containers/{id}/start":   {"detachKeys"},
	"POST /containers/{id}/stop":    {"t", "signal"},
	"POST /containers/{id}/kill":    {"signal"},
	"POST /containers/{id}/pause":   nil,
	"POST /containers/{id}/unpause": nil,
}

// SafeWrites returns, sorted, the entries AllowedWrites may hold.
func SafeWrites() []string {
	out := make([]string, 0, len(safeWrites))
	for k := range safeWrites {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// check returns every problem with c, together, wrapped in ErrConfig; nil
// when there is none. It changes nothing.
func (c Config) check() error {
	var errs []error
	if c.Socket != "" && !filepath.IsAbs(c.Socket) {
		errs = append(errs, fmt.Errorf("socket %q: not an absolute path", c.Socket))
	}
	for _, w := range c.AllowedWrites {
		if _, ok := safeWrites[w]; !ok {
			errs = append(errs, unsafeWrite(w))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
}

// unsafeWrite explains why w cannot be allowed.
func unsafeWrite(w string) error {
	method, pattern, _ := strings.Cut(w, " ")
	var why string
	switch {
	case method == "GET" || method == "HEAD":
		why = "reads are not configured here; the read-only endpoints are fixed"
	case method != "POST":
		why = "only POST container lifecycle writes may be allowed"
	case strings.Contains(pattern, "/exec") || strings.Contains(pattern, "/attach") ||
		strings.Contains(pattern, "/archive") || strings.Contains(pattern, "/export"):
		why = "it would let the gateway run a process in, or copy files out of, a container"
	default:
		why = "it is not a container lifecycle write"
	}
	return fmt.Errorf("%w: allowed_writes entry %q: %s; allowed entries: %s",
		ErrUnsafeWrite, w, why, strings.Join(SafeWrites(), ", "))
}
