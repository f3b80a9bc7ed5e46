package cli

import (
	"bufio"
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

	"github.com/leashpki/leash/protocol"
)

func (r *runtime) connectCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "connect",
		Usage:     "forward a local TCP port to a service a runner declares, through the gateway",
		ArgsUsage: "RUNNER SERVICE",
		Description: `Listens on --local and carries every connection to SERVICE on RUNNER
through the gateway and the runner's tunnel, with your operator certificate.
The runner only reaches services its own config declares by name.

  leash connect --local 127.0.0.1:2222 web-1 ssh &
  ssh -p 2222 admin@127.0.0.1`,
		Flags: []ucli.Flag{
			clientConfigFlag(),
			&ucli.StringFlag{Name: "local", Value: "127.0.0.1:0", Usage: "local address to listen on (port 0: any free port)"},
		},
		Action: r.connect,
	}
}

func (r *runtime) connect(c *ucli.Context) error {
	a, err := args(c)
	if err != nil {
		return err
	}
	if len(a) != 2 {
		return usageError{fmt.Errorf("want RUNNER SERVICE, got %d arguments", len(a))}
	}
	runner, service := a[0], a[1]
	api, err := r.api(c)
	if err != nil {
		return err
	}
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
	var wg sync.WaitGroup
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
				fmt.Fprintf(c.App.ErrWriter, "leash: connect %s/%s: %v\n", runner, service, err)
				return
			}
			defer func() { _ = remote.Close() }()
			pipe(local, remote)
		})
	}
	wg.Wait()
	return nil
}

// streamDialer returns a function that opens one byte stream to service on
// runner: an HTTP/1.1 Upgrade on the connect route, over TLS with the
// operator certificate.
func (a *apiClient) streamDialer(runner, service string) (func(context.Context) (net.Conn, error), error) {
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
	path := "/v1/runners/" + url.PathEscape(runner) + "/services/" + url.PathEscape(service) + "/connect"
	return func(ctx context.Context) (net.Conn, error) {
		d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
		conn, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return nil, fmt.Errorf("dial gateway: %w", err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		req := "GET " + path + " HTTP/1.1\r\nHost: " + a.base.Host + "\r\nConnection: Upgrade\r\nUpgrade: " +
			protocol.StreamProtocol + "\r\nUser-Agent: leash/" + version + "\r\n\r\n"
		if _, err := io.WriteString(conn, req); err != nil {
			_ = conn.Close()
			return nil, err
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("gateway answer: %w", err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			defer func() { _ = conn.Close() }()
			return nil, decodeAPIError(resp)
		}
		_ = conn.SetDeadline(time.Time{})
		return &upgradedConn{Conn: conn.(*tls.Conn), r: br}, nil
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

type upgradedConn struct {
	*tls.Conn
	r *bufio.Reader
}

func (u *upgradedConn) Read(p []byte) (int, error) { return u.r.Read(p) }

// pipe copies both ways, passing half-closes on.
func pipe(local, remote net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(remote, local)
		halfClose(remote)
	})
	_, _ = io.Copy(local, remote)
	halfClose(local)
	wg.Wait()
}

func halfClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
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
