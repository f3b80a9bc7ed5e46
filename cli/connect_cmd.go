package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/internal/tunnelio"
	"github.com/leashpki/leash/protocol"
)

func (r *runtime) connectCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "connect",
		Usage:     "forward a local TCP port to a runner's declared service, or (--port) to a port of its host in an operator session",
		ArgsUsage: "RUNNER [SERVICE]",
		Description: `Listens on --local and carries every connection to SERVICE on RUNNER
through the gateway and the runner's tunnel, with your operator certificate.
The runner only reaches services its own config declares by name.

  leash connect --local 127.0.0.1:2222 web-1 ssh &
  ssh -p 2222 admin@127.0.0.1

With --port instead of SERVICE it opens (or joins) the runner's operator
session for that port (allowed ports: the runner's session_ports, narrowed by
an operator override) and leaves the session when it stops; the session ends
after --idle without traffic, or when its last operator leaves.

  leash connect --port 22 --local 127.0.0.1:2222 web-1`,
		Flags: []ucli.Flag{
			clientConfigFlag(),
			&ucli.StringFlag{Name: "local", Value: "127.0.0.1:0", Usage: "local address to listen on (port 0: any free port)"},
			&ucli.IntFlag{Name: "port", Usage: "a port on the runner's host, through an operator session"},
			&ucli.DurationFlag{Name: "idle", Usage: "end the session after this long without traffic (default 15m)"},
		},
		Action: r.connect,
	}
}

func (r *runtime) connect(c *ucli.Context) error {
	a, err := args(c)
	if err != nil {
		return err
	}
	port := c.Int("port")
	if port == 0 && len(a) != 2 || port != 0 && len(a) != 1 {
		return usageError{fmt.Errorf("want RUNNER SERVICE, or --port N RUNNER; got %d arguments", len(a))}
	}
	api, err := r.api(c)
	if err != nil {
		return err
	}
	if port != 0 {
		return r.connectSession(c, api, a[0], port)
	}
	runner, service := a[0], a[1]
	dial, err := api.streamDialer(runner, service)
	if err != nil {
		return err
	}
	// Check before listening that the runner declares the service, so that
	// a typo fails at once (without opening a connection to anything).
	var rn protocol.Runner
	if _, err := api.call(ctx(c), http.MethodGet, "/v1/runners/"+url.PathEscape(runner), nil, nil, &rn); err != nil {
		return err
	}
	if !slices.Contains(rn.Capabilities, protocol.StreamTCP+":"+service) {
		return fmt.Errorf("runner %s declares no service %q (it has: %v)", runner, service, declaredServices(rn))
	}
	ln, err := net.Listen("tcp", c.String("local"))
	if err != nil {
		return fmt.Errorf("--local: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "forwarding %s -> runner %s service %s (Ctrl-C stops)\n", ln.Addr(), runner, service)
	return forward(c, ln, dial, runner+"/"+service)
}

// forward accepts local connections until the command's context ends and
// carries each over a stream from dial.
func forward(c *ucli.Context, ln net.Listener, dial func(context.Context) (net.Conn, error), what string) error {
	var (
		wg      sync.WaitGroup
		buffers tunnelio.Buffers
	)
	stop := context.AfterFunc(c.Context, func() { _ = ln.Close() })
	defer stop()
	for {
		local, err := ln.Accept()
		if err != nil {
			break
		}
		wg.Go(func() {
			defer func() { _ = local.Close() }()
			remote, err := dial(c.Context)
			if err != nil {
				fmt.Fprintf(c.App.ErrWriter, "leash: connect %s: %v\n", what, err)
				return
			}
			defer func() { _ = remote.Close() }()
			buffers.Splice(local, remote)
		})
	}
	wg.Wait()
	return nil
}

// connectSession opens or joins the operator session on runner for port,
// forwards --local to it, and leaves the session when it stops.
func (r *runtime) connectSession(c *ucli.Context, api *apiClient, runner string, port int) error {
	req := protocol.SessionRequest{Runner: runner, Ports: []int{port}, IdleTimeout: protocol.Duration(c.Duration("idle"))}
	var se protocol.Session
	if _, err := api.call(ctx(c), http.MethodPost, "/v1/tunnel/connect", nil, req, &se); err != nil {
		return err
	}
	defer func() {
		// Leave (the last operator out ends the session), even after Ctrl-C.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx(c)), 10*time.Second)
		defer cancel()
		_, _ = api.call(lctx, http.MethodDelete, "/v1/tunnel/disconnect", url.Values{"runner": {runner}, "leave": {"true"}}, nil, nil)
	}()
	dial, err := api.upgradeDialer(fmt.Sprintf("/v1/tunnel/sessions/%s/ports/%d", url.PathEscape(se.ID), port),
		map[string]string{protocol.HeaderSessionToken: se.Token})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("local"))
	if err != nil {
		return fmt.Errorf("--local: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "forwarding %s -> runner %s port %d, session %s (idle timeout %s; Ctrl-C stops)\n",
		ln.Addr(), runner, port, se.ID, se.IdleTimeout.D())
	return forward(c, ln, dial, fmt.Sprintf("%s:%d", runner, port))
}

// streamDialer returns a function that opens one byte stream to service on
// runner: an HTTP/1.1 Upgrade on the connect route, over TLS with the
// operator certificate.
func (a *apiClient) streamDialer(runner, service string) (func(context.Context) (net.Conn, error), error) {
	return a.upgradeDialer("/v1/runners/"+url.PathEscape(runner)+"/services/"+url.PathEscape(service)+"/connect", nil)
}

// upgradeDialer opens byte streams by upgrading requests to path.
func (a *apiClient) upgradeDialer(path string, headers map[string]string) (func(context.Context) (net.Conn, error), error) {
	tr, ok := a.http.Transport.(*http.Transport)
	if !ok || a.base.Scheme != "https" {
		return nil, errors.New("leash connect needs an https gateway")
	}
	cfg := tr.TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	host := a.base.Host
	if a.base.Port() == "" {
		host = net.JoinHostPort(a.base.Hostname(), "443")
	}
	return func(ctx context.Context) (net.Conn, error) {
		d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
		conn, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return nil, fmt.Errorf("dial gateway: %w", err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		h := http.Header{"User-Agent": {"leash/" + version}}
		for k, v := range headers {
			h.Set(k, v)
		}
		stream, resp, err := tunnelio.Upgrade(conn, a.base.Host, path, protocol.StreamProtocol, h)
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
		if resp != nil {
			defer func() { _ = conn.Close() }()
			return nil, decodeAPIError(resp)
		}
		_ = conn.SetDeadline(time.Time{})
		return stream, nil
	}, nil
}

// decodeAPIError turns a refusal into an error carrying the gateway's
// message.
func decodeAPIError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e protocol.Error
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return fmt.Errorf("gateway refused (%d %s): %s", resp.StatusCode, e.Code, e.Message)
	}
	return fmt.Errorf("gateway refused: %s", resp.Status)
}

func declaredServices(rn protocol.Runner) []string {
	var out []string
	for _, c := range rn.Capabilities {
		if name, ok := strings.CutPrefix(c, protocol.StreamTCP+":"); ok {
			out = append(out, name)
		}
	}
	return out
}
