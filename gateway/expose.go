package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// Exposure publishes one service of one runner on a gateway TCP port:
// every connection to Listen is carried through the runner's tunnel to the
// service the runner declares under that name. Whoever reaches Listen
// reaches the service; bind it where only the intended clients can.
type Exposure struct {
	Listen  string // host:port on the gateway
	Runner  string
	Service string
}

// ParseExposure reads "LISTEN=RUNNER/SERVICE", e.g.
// "127.0.0.1:15432=web-1/db".
func ParseExposure(s string) (Exposure, error) {
	listen, target, ok := strings.Cut(s, "=")
	runner, service, ok2 := strings.Cut(target, "/")
	if !ok || !ok2 {
		return Exposure{}, fmt.Errorf("expose %q: want LISTEN=RUNNER/SERVICE, e.g. 127.0.0.1:15432=web-1/db", s)
	}
	e := Exposure{Listen: listen, Runner: runner, Service: service}
	return e, e.validate()
}

func (e Exposure) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(e.Listen); err != nil {
		errs = append(errs, fmt.Errorf("expose listen %q: %w", e.Listen, err))
	}
	if err := leashtls.ValidName(e.Runner); err != nil {
		errs = append(errs, fmt.Errorf("expose runner: %w", err))
	}
	if err := leashtls.ValidName(e.Service); err != nil {
		errs = append(errs, fmt.Errorf("expose service: %w", err))
	}
	return errors.Join(errs...)
}

func (e Exposure) String() string { return e.Listen + "=" + e.Runner + "/" + e.Service }

// exposed is one bound Exposure.
type exposed struct {
	Exposure
	ln net.Listener
}

// bindExposures binds every exposure's listener, or none.
func bindExposures(list []Exposure) ([]*exposed, error) {
	var out []*exposed
	for _, e := range list {
		ln, err := net.Listen("tcp", e.Listen)
		if err != nil {
			for _, b := range out {
				_ = b.ln.Close()
			}
			return nil, fmt.Errorf("expose %s: %w", e, err)
		}
		out = append(out, &exposed{Exposure: e, ln: ln})
	}
	return out, nil
}

// serveExposure accepts connections until ctx ends and carries each
// through the runner's tunnel.
func (s *Server) serveExposure(ctx context.Context, e *exposed) error {
	stop := context.AfterFunc(ctx, func() { _ = e.ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	s.log.Info("service exposed", "addr", e.ln.Addr().String(), "runner", e.Runner, "service", e.Service)
	for {
		conn, err := e.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("expose %s: %w", e.Exposure, err)
		}
		wg.Go(func() {
			defer func() { _ = conn.Close() }()
			client := conn.RemoteAddr().String()
			refused := func(err error) {
				s.m.streams.WithLabelValues("refused").Inc()
				s.log.Warn("exposed service unavailable", "runner", e.Runner, "service", e.Service, "client", client, "err", err)
			}
			if err := s.checkDeclared(ctx, e.Runner, "tcp:"+e.Service); err != nil {
				refused(err)
				return
			}
			// The client's first bytes go out with the stream request; a
			// refusal comes back to the first read from the stream and
			// ends the client's connection.
			stream, err := s.tunnels.dialEarly(ctx, e.Runner, protocol.StreamTCP, e.Service, "tcp://"+client, func(err error) {
				if err != nil {
					refused(err)
					_ = conn.Close()
					return
				}
				s.m.streams.WithLabelValues("ok").Inc()
			})
			if err != nil {
				refused(err)
				return
			}
			defer func() { _ = stream.Close() }()
			stopConn := context.AfterFunc(ctx, func() { _ = conn.Close(); _ = stream.Close() })
			defer stopConn()
			s.buffers.Splice(conn, stream)
		})
	}
}
