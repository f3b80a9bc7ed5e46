package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/leashpki/leash/internal/tunnelio"
	"github.com/leashpki/leash/protocol"
)

// runTunnel keeps one tunnel open while the runner declares services:
// opened over the client transport with an HTTP Upgrade, replaced by a new
// one after every certificate rotation (the gateway closes a connection
// when its certificate expires; streams on the old tunnel finish there),
// and reopened with the reconnect backoff when it breaks.
func (a *Agent) runTunnel(ctx context.Context) error {
	if len(a.cfg.Services) == 0 && len(a.cfg.Domains) == 0 && len(a.cfg.SessionPorts) == 0 && a.docker == nil {
		return nil
	}
	bo := backoff{Min: a.reconnect.Min, Max: a.reconnect.Max}
	var draining sync.WaitGroup
	defer draining.Wait()
	for {
		rotated := a.rotation.changed()
		sess, release, err := a.openTunnel(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			delay := bo.next()
			a.log.Warn("tunnel unavailable; retrying", "err", err, "retry_in", delay)
			if !sleepCtx(ctx, delay) {
				return nil
			}
			continue
		}
		bo.Reset()
		a.tunnels.Add(1)
		a.log.Info("tunnel open", "services", len(a.cfg.Services))
		served := make(chan struct{})
		go func() {
			defer close(served)
			defer release()
			a.serveTunnel(ctx, sess)
		}()
		select {
		case <-ctx.Done():
			_ = sess.Close()
			<-served
			return nil
		case <-served:
			a.log.Warn("tunnel closed; reopening")
			if !sleepCtx(ctx, bo.next()) {
				return nil
			}
		case <-rotated:
			// A fresh tunnel under the new certificate takes new streams;
			// the old one drains: it stays open until its streams end
			// (or the gateway closes it when the old certificate expires).
			draining.Add(1)
			go func() {
				defer draining.Done()
				drainTunnel(ctx, sess, served)
			}()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// drainTunnel closes sess once it carries no stream, or when ctx ends.
func drainTunnel(ctx context.Context, sess *yamux.Session, served <-chan struct{}) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
		case <-served:
			return
		case <-tick.C:
			if sess.NumStreams() > 0 {
				continue
			}
		}
		_ = sess.Close()
		<-served
		return
	}
}

// openTunnel upgrades one request to the tunnel protocol and starts the
// yamux client on the connection.
// The returned release function frees the request once the session is over.
func (a *Agent) openTunnel(ctx context.Context) (*yamux.Session, func(), error) {
	// The request's context must outlive the request: cancelling it would
	// close the upgraded connection. Only the dial and the upgrade answer
	// are bounded, by a timer that is stopped once they are done.
	reqCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var carrier net.Conn // the connection the upgrade went out on
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { carrier = info.Conn }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(reqCtx, trace), http.MethodGet, a.base+"/v1/tunnel", nil)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", protocol.TunnelProtocol)
	req.Header.Set(protocol.HeaderRunnerID, a.cfg.Name)
	req.Header.Set("User-Agent", "leash-runner/"+a.version)
	// The dial and the upgrade answer are bounded; the connection after
	// them is not tied to any request context.
	timer := time.AfterFunc(30*time.Second, cancel)
	resp, err := a.client.Do(req)
	if !timer.Stop() {
		if err == nil {
			_ = resp.Body.Close()
		}
		return nil, nil, errors.New("open tunnel: no answer within 30s")
	}
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("open tunnel: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer cancel()
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
		se := &statusError{Status: resp.StatusCode}
		_ = json.Unmarshal(body, &se.Body)
		return nil, nil, fmt.Errorf("open tunnel: %w", se)
	}
	conn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		_ = resp.Body.Close()
		cancel()
		return nil, nil, errors.New("open tunnel: the upgraded connection is not writable")
	}
	co := tunnelio.NewCoalescer(conn)
	if g := tunnelio.GatherOf(carrier); g != nil {
		co.SetGather(g)
	}
	sess, err := yamux.Client(co, tunnelio.Config(a.log, a.keepAlive))
	if err != nil {
		_ = co.Close()
		cancel()
		return nil, nil, fmt.Errorf("open tunnel: %w", err)
	}
	return sess, cancel, nil
}

// serveTunnel accepts streams until the session ends, then wakes the
// streams still in use (see tunnelio.Streams) and waits for them.
func (a *Agent) serveTunnel(ctx context.Context, sess *yamux.Session) {
	var wg sync.WaitGroup
	defer wg.Wait()
	var streams tunnelio.Streams
	defer streams.End()
	for {
		stream, err := sess.AcceptStream()
		if err != nil {
			return
		}
		wg.Go(func() { a.serveStream(ctx, streams.Add(stream)) })
	}
}

// serveStream answers one stream: it reads the request, checks it against
// the declared services, dials and splices.
func (a *Agent) serveStream(ctx context.Context, stream *tunnelio.Stream) {
	defer func() { _ = stream.Close() }()
	_ = stream.SetDeadline(time.Now().Add(protocol.StreamHeaderTimeout))
	br := bufio.NewReaderSize(stream, 1024)
	line, err := readLine(br, protocol.MaxStreamHeader)
	if err != nil {
		a.log.Warn("tunnel stream without a valid request", "err", err)
		return
	}
	var req protocol.StreamRequest
	if err := json.Unmarshal(line, &req); err != nil {
		refuse(stream, "malformed stream request")
		return
	}
	if req.Kind == protocol.StreamDocker && a.docker != nil {
		// The runner's own filter decides every request on the stream.
		if err := writeJSONLine(stream, protocol.StreamReply{OK: true}); err != nil {
			return
		}
		_ = stream.SetDeadline(time.Time{})
		serveHTTPStream(tunnelio.Buffered(stream, br), a.docker)
		return
	}
	if router, ok := a.domains[req.Service]; ok && req.Kind == protocol.StreamHTTP {
		if pt := router.passThrough; pt != nil {
			a.spliceTo(ctx, stream, br, pt[0], pt[1], "domain "+req.Service)
			return
		}
		if err := writeJSONLine(stream, protocol.StreamReply{OK: true}); err != nil {
			return
		}
		_ = stream.SetDeadline(time.Time{})
		serveHTTPStream(tunnelio.Buffered(stream, br), router)
		return
	}
	addr, ok := a.cfg.Services[req.Service]
	if req.Kind == protocol.StreamPort {
		// Operator sessions reach this host only, on allowed ports only.
		port, err := strconv.Atoi(req.Service)
		ok = err == nil && slices.Contains(a.cfg.SessionPorts, port)
		addr = net.JoinHostPort("127.0.0.1", req.Service)
	} else if req.Kind != protocol.StreamTCP {
		ok = false
	}
	if !ok {
		// Not declared here: the gateway cannot make the runner reach it.
		a.log.Warn("refused a tunnel stream to an undeclared service", "kind", req.Kind, "service", req.Service, "client", req.Client)
		a.events.add(protocol.Event{Kind: protocol.EventLog, Level: "warn",
			Message: fmt.Sprintf("refused a tunnel stream to undeclared %s service %q (asked by %s)", req.Kind, req.Service, req.Client)})
		refuse(stream, fmt.Sprintf("service %q is not declared by runner %s", req.Service, a.cfg.Name))
		return
	}
	a.spliceTo(ctx, stream, br, "tcp", addr, fmt.Sprintf("service %q", req.Service))
}

// spliceTo dials a local target, answers the stream's request and carries
// bytes both ways until both ends are done.
func (a *Agent) spliceTo(ctx context.Context, stream *tunnelio.Stream, br *bufio.Reader, network, addr, what string) {
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1} // a local target; the tunnel has its own keepalive
	target, err := d.DialContext(ctx, network, addr)
	if err != nil {
		refuse(stream, fmt.Sprintf("%s: %v", what, err))
		return
	}
	defer func() { _ = target.Close() }()
	if err := writeJSONLine(stream, protocol.StreamReply{OK: true}); err != nil {
		return
	}
	_ = stream.SetDeadline(time.Time{})
	a.buffers.Splice(tunnelio.Buffered(stream, br), target)
}

func refuse(w io.Writer, msg string) { _ = writeJSONLine(w, protocol.StreamReply{Error: msg}) }

func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readLine reads one '\n'-terminated line of at most max bytes.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return nil, fmt.Errorf("stream header longer than %d bytes", max)
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// rotationSignal tells the tunnel that the certificate changed: changed
// returns a channel closed at the next rotation.
type rotationSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (r *rotationSignal) changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch == nil {
		r.ch = make(chan struct{})
	}
	return r.ch
}

func (r *rotationSignal) rotated() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch != nil {
		close(r.ch)
	}
	r.ch = make(chan struct{})
}
