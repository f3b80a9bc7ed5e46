package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/tunnelio"
	"github.com/leashpki/leash/protocol"
)

// tunnels knows the live tunnel of every runner. A runner opens a new
// tunnel after each certificate rotation; the newest takes new streams and
// the previous one drains (the runner closes it when its streams are done,
// or the gateway when its certificate expires).
type tunnels struct {
	log  *slog.Logger
	mu   sync.Mutex
	live map[string]*tunnel
	all  map[*tunnel]struct{}
}

// A tunnel is registered before the runner gets the answer to its
// upgrade, so that a runner that counts its tunnel open can be reached
// through it at once. Until the answer is written, ready is open and
// streams wait for it: nothing may be written on the connection before
// the answer.
type tunnel struct {
	runner  string
	serial  string
	streams tunnelio.Streams // the streams in use, woken when sess ends
	opened  time.Time
	ready   chan struct{}  // closed once the answer is written, or failed
	sess    *yamux.Session // set before ready is closed; nil if the answer failed
}

// close ends the tunnel: its streams in use first (see tunnelio.Streams),
// then the session. A tunnel still being answered has no session yet;
// closeAll runs only once the gateway is stopping, and the handler
// closes the session itself when it sees that (tunnelHandler).
func (t *tunnel) close() {
	t.streams.End()
	select {
	case <-t.ready:
		if t.sess != nil {
			_ = t.sess.Close()
		}
	default:
	}
}

// session waits until the runner has its answer and returns the
// tunnel's session.
func (t *tunnel) session(ctx context.Context) (*yamux.Session, error) {
	select {
	case <-t.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("tunnel of %s: waiting for its upgrade answer: %w", t.runner, ctx.Err())
	}
	if t.sess == nil {
		return nil, errNoTunnel
	}
	return t.sess, nil
}

func newTunnels(log *slog.Logger) *tunnels {
	return &tunnels{log: log, live: map[string]*tunnel{}, all: map[*tunnel]struct{}{}}
}

// add makes t its runner's live tunnel and returns the one it replaces.
func (ts *tunnels) add(t *tunnel) (replaced *tunnel) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	replaced = ts.live[t.runner]
	ts.live[t.runner] = t
	ts.all[t] = struct{}{}
	return replaced
}

// withdraw unregisters t, whose upgrade answer failed: the tunnel it
// replaced, if still open, is its runner's live tunnel again.
func (ts *tunnels) withdraw(t, replaced *tunnel) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.removeLocked(t) {
		if _, open := ts.all[replaced]; open {
			ts.live[t.runner] = replaced
		}
	}
}

func (ts *tunnels) remove(t *tunnel) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.removeLocked(t)
}

// removeLocked unregisters t and reports whether it was its runner's
// live tunnel. ts.mu is held.
func (ts *tunnels) removeLocked(t *tunnel) (wasLive bool) {
	delete(ts.all, t)
	if ts.live[t.runner] != t {
		return false
	}
	delete(ts.live, t.runner)
	return true
}

func (ts *tunnels) get(runner string) *tunnel {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.live[runner]
}

func (ts *tunnels) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.live)
}

func (ts *tunnels) closeAll() {
	ts.mu.Lock()
	var all []*tunnel
	for t := range ts.all {
		all = append(all, t)
	}
	ts.mu.Unlock()
	for _, t := range all {
		t.close()
	}
}

// openStreams is the number of streams in use over all tunnels.
func (ts *tunnels) openStreams() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for t := range ts.all {
		n += t.streams.Len()
	}
	return n
}

// errNoTunnel means the runner has no tunnel open right now.
var errNoTunnel = errors.New("runner has no tunnel open")

// dial opens a stream to a service the runner declared. The runner checks
// the name against its own configuration and refuses anything else.
func (ts *tunnels) dial(ctx context.Context, runner, service, client string) (net.Conn, error) {
	return ts.dialKind(ctx, runner, protocol.StreamTCP, service, client)
}

// dialKind opens a stream of kind (tcp, http) to a declared name and
// waits for the runner's answer.
func (ts *tunnels) dialKind(ctx context.Context, runner, kind, service, client string) (net.Conn, error) {
	stream, err := ts.dialEarly(ctx, runner, kind, service, client, nil)
	if err != nil {
		return nil, err
	}
	if err := stream.answer(); err != nil {
		_ = stream.Close()
		return nil, err
	}
	return stream, nil
}

// dialEarly opens a stream like dialKind without waiting for the answer:
// the caller writes at once, which saves a round trip per connection.
// The runner reads what follows its request only once it accepted it, and
// drops it otherwise. The first Read returns the runner's refusal, if
// any; answered (which may be nil) learns the outcome once, before that
// Read returns.
func (ts *tunnels) dialEarly(ctx context.Context, runner, kind, service, client string, answered func(error)) (*earlyStream, error) {
	stream, err := ts.openStream(ctx, runner, kind, service, client)
	if err != nil {
		return nil, err
	}
	_ = stream.SetWriteDeadline(time.Time{})
	return &earlyStream{Stream: stream, runner: runner, answered: answered}, nil
}

// openStream opens a stream and writes its request. The stream's
// deadline is the header timeout, or ctx's deadline if sooner.
func (ts *tunnels) openStream(ctx context.Context, runner, kind, service, client string) (*tunnelio.Stream, error) {
	t := ts.get(runner)
	if t == nil {
		return nil, errNoTunnel
	}
	sess, err := t.session(ctx)
	if err != nil {
		return nil, err
	}
	st, err := sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("open stream to %s: %w", runner, err)
	}
	stream := t.streams.Add(st)
	deadline := time.Now().Add(protocol.StreamHeaderTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = stream.SetDeadline(deadline)
	req, _ := json.Marshal(protocol.StreamRequest{Kind: kind, Service: service, Client: client})
	if _, err := stream.Write(append(req, '\n')); err != nil {
		_ = stream.Close()
		return nil, fmt.Errorf("stream to %s: %w", runner, err)
	}
	return stream, nil
}

// readStreamReply reads the runner's answer line: nil for OK, a
// *refusedError for a refusal.
func readStreamReply(runner string, br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("stream to %s: no answer: %w", runner, err)
	}
	var reply protocol.StreamReply
	if err := json.Unmarshal(line, &reply); err != nil {
		return fmt.Errorf("stream to %s: bad answer: %w", runner, err)
	}
	if !reply.OK {
		return &refusedError{msg: reply.Error}
	}
	return nil
}

// earlyStream is a stream whose answer is read by its first Read (or by
// answer). Its CloseWrite, tunnelio.Stream's, sends FIN and goes on
// reading.
type earlyStream struct {
	*tunnelio.Stream
	runner   string
	answered func(error)

	once sync.Once
	r    io.Reader // after the answer: what follows it
	err  error     // the refusal, or why there was no answer
}

// answer reads the runner's answer, once: nil when it accepted the
// stream. The header deadline ends then.
func (e *earlyStream) answer() error {
	e.once.Do(func() {
		br := bufio.NewReaderSize(e.Stream, 512)
		e.err = readStreamReply(e.runner, br)
		if e.err == nil {
			_ = e.Stream.SetReadDeadline(time.Time{})
			e.r = tunnelio.Buffered(e.Stream, br)
		}
		if e.answered != nil {
			e.answered(e.err)
		}
	})
	return e.err
}

func (e *earlyStream) Read(p []byte) (int, error) {
	if err := e.answer(); err != nil {
		return 0, err
	}
	return e.r.Read(p)
}

// refusedError is the runner refusing a stream (undeclared service, or
// the service does not answer).
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return "runner refused: " + e.msg }

// tunnelHandler serves RouteTunnel: a runner upgrades its connection and
// the gateway runs the yamux server side on it until it closes.
func (s *Server) tunnelHandler(w http.ResponseWriter, r *http.Request, c caller) error {
	if !c.verified {
		return errorf(http.StatusForbidden, protocol.CodeForbidden, "tunnels need mTLS: the tunnel's identity is its client certificate")
	}
	if err := checkUpgrade(r, protocol.TunnelProtocol); err != nil {
		return err
	}
	conn, rw, done, err := s.hijack(w)
	if err != nil {
		return fmt.Errorf("hijack tunnel connection: %w", err)
	}
	defer done()
	_ = conn.SetDeadline(time.Time{})
	t := &tunnel{runner: c.id.Name, serial: c.id.Serial, opened: s.now(), ready: make(chan struct{})}
	replaced := s.tunnels.add(t)
	sess, err := s.answerTunnel(conn, rw)
	t.sess = sess
	close(t.ready)
	if err != nil {
		s.tunnels.withdraw(t, replaced)
		_ = conn.Close()
		return nil
	}
	s.audit(r.Context(), c.actor(), "tunnel.open", c.id.Name, "serial "+c.id.Serial)
	s.log.Info("tunnel open", "runner", c.id.Name, "serial", c.id.Serial)
	select {
	case <-sess.CloseChan():
		t.streams.End()
	case <-s.stopping:
		t.close()
	}
	s.tunnels.remove(t)
	s.conns.untrack(conn)
	_ = conn.Close()
	s.audit(context.WithoutCancel(r.Context()), "gateway", "tunnel.close", c.id.Name, "open for "+s.now().Sub(t.opened).Round(time.Second).String())
	s.log.Info("tunnel closed", "runner", c.id.Name, "serial", c.id.Serial)
	return nil
}

// tunnelAnswerTimeout bounds the write of the answer to a tunnel's
// upgrade: the tunnel is registered while it is written.
const tunnelAnswerTimeout = 10 * time.Second

// answerTunnel writes the answer to a tunnel's upgrade and then starts
// the yamux server side, whose frames must follow the answer.
func (s *Server) answerTunnel(conn net.Conn, rw *bufio.ReadWriter) (*yamux.Session, error) {
	_ = conn.SetWriteDeadline(time.Now().Add(tunnelAnswerTimeout))
	if err := writeSwitching(rw, protocol.TunnelProtocol); err != nil {
		return nil, fmt.Errorf("answer the tunnel's upgrade: %w", err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	co := tunnelio.NewCoalescer(tunnelio.Buffered(conn, rw.Reader))
	if g := tunnelio.GatherOf(conn); g != nil {
		co.SetGather(g)
	}
	sess, err := yamux.Server(co, tunnelio.Config(s.log, s.cfg.TunnelKeepAlive))
	if err != nil {
		_ = co.Close()
		return nil, fmt.Errorf("start the tunnel's session: %w", err)
	}
	return sess, nil
}

// connectHandler serves RouteConnect: an operator's connection becomes a
// byte stream to one service of one runner (leash connect).
func (s *Server) connectHandler(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := checkUpgrade(r, protocol.StreamProtocol); err != nil {
		return err
	}
	runner, service := r.PathValue("id"), r.PathValue("name")
	// The gateway's own check first: only what the runner registered as a
	// service; the runner checks again against its config.
	if err := s.checkDeclared(r.Context(), runner, protocol.StreamTCP+":"+service); err != nil {
		return err
	}
	stream, err := s.tunnels.dial(r.Context(), runner, service, c.actor())
	if err != nil {
		s.m.streams.WithLabelValues("refused").Inc()
		return streamError(runner, err)
	}
	conn, rw, done, err := s.hijack(w)
	if err != nil {
		_ = stream.Close()
		return fmt.Errorf("hijack: %w", err)
	}
	defer done()
	_ = conn.SetDeadline(time.Time{})
	s.m.streams.WithLabelValues("ok").Inc()
	s.audit(r.Context(), c.actor(), "service.connect", runner, service)
	if err := writeSwitching(rw, protocol.StreamProtocol); err == nil {
		s.buffers.Splice(tunnelio.Buffered(conn, rw.Reader), stream)
	}
	s.conns.untrack(conn)
	_ = conn.Close()
	_ = stream.Close()
	return nil
}

func streamError(runner string, err error) error {
	var refused *refusedError
	switch {
	case errors.Is(err, errNoTunnel):
		return errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "runner %s has no tunnel open", runner)
	case errors.As(err, &refused):
		return errorf(http.StatusForbidden, protocol.CodeForbidden, "%v", err)
	default:
		return errorf(http.StatusBadGateway, protocol.CodeUnavailable, "%v", err)
	}
}

func checkUpgrade(r *http.Request, proto string) error {
	if r.Header.Get("Upgrade") != proto {
		return errorf(http.StatusUpgradeRequired, protocol.CodeBadRequest, "this route needs Connection: Upgrade and Upgrade: %s", proto)
	}
	return nil
}

func writeSwitching(rw *bufio.ReadWriter, proto string) error {
	if _, err := rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + proto + "\r\n\r\n"); err != nil {
		return err
	}
	return rw.Flush()
}

// checkDeclared refuses a stream to something the runner did not register
// as a capability (kind:name).
func (s *Server) checkDeclared(ctx context.Context, runner, capability string) error {
	caps, err := s.capabilities.get(ctx, s.st, runner, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "runner %s has no tunnel open", runner)
	}
	if err != nil {
		return err
	}
	if !slices.Contains(caps, capability) {
		return errorf(http.StatusForbidden, protocol.CodeForbidden, "runner %s does not declare %s", runner, capability)
	}
	return nil
}

// capabilityCache keeps runners' registered capabilities for a few
// seconds, so that opening a stream does not read the store each time (a
// registration on this replica refreshes it at once).
type capabilityCache struct {
	mu sync.Mutex
	by map[string]cachedCaps
}

type cachedCaps struct {
	caps []string
	at   time.Time
}

const capabilityTTL = 5 * time.Second

func (c *capabilityCache) get(ctx context.Context, st store.Store, runner string, now time.Time) ([]string, error) {
	c.mu.Lock()
	e, ok := c.by[runner]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < capabilityTTL {
		return e.caps, nil
	}
	rec, err := st.Runner(ctx, runner)
	if err != nil {
		return nil, err
	}
	c.set(runner, rec.Capabilities, now)
	return rec.Capabilities, nil
}

func (c *capabilityCache) set(runner string, caps []string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]cachedCaps{}
	}
	c.by[runner] = cachedCaps{caps: caps, at: now}
}
