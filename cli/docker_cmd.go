package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/protocol"
)

func (r *runtime) dockerCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "docker",
		Usage:     "serve a runner's filtered Docker API on a local socket for the docker CLI",
		ArgsUsage: "RUNNER",
		Description: `Listens on a local unix socket (or --local host:port) and carries every
Docker API request to RUNNER through the gateway, with your operator
certificate. The runner's own filter decides: read-only by default (ps,
inspect with Env redacted, images, networks, volumes, events), writes only
if its config allows them.

  leash docker web-1 &
  DOCKER_HOST=unix:///tmp/leash-docker-web-1/docker.sock docker ps`,
		Flags: []ucli.Flag{
			clientConfigFlag(),
			&ucli.StringFlag{Name: "local", Usage: "unix socket path, or host:port (default: a socket in a new temp dir)"},
		},
		Action: r.dockerForward,
	}
}

func (r *runtime) dockerForward(c *ucli.Context) error {
	a, err := args(c)
	if err != nil {
		return err
	}
	if len(a) != 1 {
		return usageError{fmt.Errorf("want one RUNNER, got %d arguments", len(a))}
	}
	runner := a[0]
	api, err := r.api(c)
	if err != nil {
		return err
	}
	var rn protocol.Runner
	if _, err := api.call(ctx(c), http.MethodGet, "/v1/runners/"+url.PathEscape(runner), nil, nil, &rn); err != nil {
		return err
	}
	if !containsString(rn.Capabilities, protocol.StreamDocker) {
		return fmt.Errorf("runner %s offers no Docker API (its config has no docker section)", runner)
	}
	ln, hostEnv, cleanup, err := dockerListener(c.String("local"), runner)
	if err != nil {
		return err
	}
	defer cleanup()
	base := *api.base
	prefix := "/v1/runners/" + url.PathEscape(runner) + "/docker"
	proxy := &httputil.ReverseProxy{
		Transport:     api.http.Transport,
		FlushInterval: -1,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&base)
			pr.Out.URL.Path = prefix + pr.In.URL.Path
			pr.Out.URL.RawPath = prefix + pr.In.URL.EscapedPath()
		},
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 30 * time.Second}
	fmt.Fprintf(c.App.Writer, "export DOCKER_HOST=%s   # runner %s's Docker API, filtered by the runner (Ctrl-C stops)\n", hostEnv, runner)
	stop := context.AfterFunc(c.Context, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// dockerListener listens where the docker CLI will look and returns the
// DOCKER_HOST value for it.
func dockerListener(local, runner string) (net.Listener, string, func(), error) {
	if local != "" && !strings.HasPrefix(local, "/") && !strings.HasPrefix(local, "unix://") {
		ln, err := net.Listen("tcp", local)
		if err != nil {
			return nil, "", nil, fmt.Errorf("--local: %w", err)
		}
		return ln, "tcp://" + ln.Addr().String(), func() {}, nil
	}
	path := strings.TrimPrefix(local, "unix://")
	cleanup := func() {}
	if path == "" {
		dir, err := os.MkdirTemp("", "leash-docker-"+runner+"-")
		if err != nil {
			return nil, "", nil, err
		}
		path = filepath.Join(dir, "docker.sock")
		cleanup = func() { _ = os.RemoveAll(dir) }
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		cleanup()
		return nil, "", nil, fmt.Errorf("--local: %w", err)
	}
	_ = os.Chmod(path, 0o600) // only this user may speak with this operator's certificate
	return ln, "unix://" + path, cleanup, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
