package gateway

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/tunnelio"
	"github.com/leashpki/leash/protocol"
)

// sessions are the live operator sessions of this replica, one per runner.
// They live in memory: a session is bound to the replica the operator
// talks to, and ends with it.
type sessions struct {
	s  *Server
	mu sync.Mutex
	by map[string]*session // by runner
}

type session struct {
	id, runner, token string
	ports             []int
	operators         []string
	created, expires  time.Time
	idle              time.Duration
	lastActive        atomicTime
	streams           map[net.Conn]struct{}
	done              chan struct{}
	endOnce           sync.Once
}

func newSessions(s *Server) *sessions { return &sessions{s: s, by: map[string]*session{}} }

// sessionACLPrefix keeps operator overrides of the ports sessions may use
// on a runner, in the store's Blobs.
const sessionACLPrefix = "session-ports/"

// allowedPorts is what a session on runner may use: the ports the runner
// declares, narrowed by the operator override when there is one.
func (s *Server) allowedPorts(ctx context.Context, runner string) ([]int, error) {
	rec, err := s.st.Runner(ctx, runner)
	if err != nil {
		return nil, err
	}
	var declared []int
	for _, c := range rec.Capabilities {
		if v, ok := strings.CutPrefix(c, protocol.StreamPort+":"); ok {
			if p, err := strconv.Atoi(v); err == nil {
				declared = append(declared, p)
			}
		}
	}
	b, err := s.st.Blob(ctx, sessionACLPrefix+runner)
	if errors.Is(err, store.ErrNotFound) {
		return declared, nil
	}
	if err != nil {
		return nil, err
	}
	var o protocol.SessionPorts
	if err := json.Unmarshal(b.Value, &o); err != nil {
		return nil, err
	}
	// The override can only narrow; the runner would refuse the rest anyway.
	var out []int
	for _, p := range o.Ports {
		if slices.Contains(declared, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// open starts or joins the session on a runner.
func (ss *sessions) open(ctx context.Context, req protocol.SessionRequest, operator string) (*session, bool, error) {
	allowed, err := ss.s.allowedPorts(ctx, req.Runner)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, errorf(http.StatusNotFound, protocol.CodeNotFound, "no runner %s", req.Runner)
	}
	if err != nil {
		return nil, false, err
	}
	var refused []string
	for _, p := range req.Ports {
		if !slices.Contains(allowed, p) {
			refused = append(refused, strconv.Itoa(p))
		}
	}
	if len(refused) > 0 {
		return nil, false, errorf(http.StatusForbidden, protocol.CodeForbidden, "ports %s are not allowed on runner %s (allowed: %v)",
			strings.Join(refused, ", "), req.Runner, allowed)
	}
	if ss.s.tunnels.get(req.Runner) == nil {
		return nil, false, errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "runner %s has no tunnel open", req.Runner)
	}
	now := ss.s.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if cur := ss.by[req.Runner]; cur != nil && !cur.ended() {
		for _, p := range req.Ports {
			if !slices.Contains(cur.ports, p) {
				cur.ports = append(cur.ports, p)
			}
		}
		slices.Sort(cur.ports)
		if !slices.Contains(cur.operators, operator) {
			cur.operators = append(cur.operators, operator)
		}
		cur.lastActive.store(now)
		return cur, true, nil
	}
	idle := req.IdleTimeout.D()
	if idle == 0 {
		idle = protocol.DefaultSessionIdle
	}
	se := &session{id: "sess-" + newToken()[:16], runner: req.Runner, token: newToken(), ports: slices.Sorted(slices.Values(req.Ports)),
		operators: []string{operator}, created: now, expires: now.Add(protocol.MaxSessionLifetime), idle: idle,
		streams: map[net.Conn]struct{}{}, done: make(chan struct{})}
	se.lastActive.store(now)
	ss.by[req.Runner] = se
	return se, false, nil
}

func (se *session) ended() bool {
	select {
	case <-se.done:
		return true
	default:
		return false
	}
}

// end tears the session down at once: every stream is closed.
func (ss *sessions) end(se *session, reason string) {
	se.endOnce.Do(func() {
		ss.mu.Lock()
		if ss.by[se.runner] == se {
			delete(ss.by, se.runner)
		}
		conns := make([]net.Conn, 0, len(se.streams))
		for c := range se.streams {
			conns = append(conns, c)
		}
		ss.mu.Unlock()
		close(se.done)
		for _, c := range conns {
			_ = c.Close()
		}
		ss.s.audit(context.Background(), "gateway", "session.end", se.runner, se.id+" "+reason)
		ss.s.log.Info("session ended", "session", se.id, "runner", se.runner, "reason", reason)
	})
}

// check finds the session for a stream and verifies its token.
func (ss *sessions) check(id, token string, port int) (*session, error) {
	ss.mu.Lock()
	var se *session
	for _, x := range ss.by {
		if x.id == id {
			se = x
		}
	}
	ss.mu.Unlock()
	switch {
	case se == nil || se.ended():
		return nil, errorf(http.StatusNotFound, protocol.CodeNotFound, "no live session %s", id)
	case subtle.ConstantTimeCompare([]byte(token), []byte(se.token)) != 1:
		return nil, errorf(http.StatusForbidden, protocol.CodeForbidden, "the session token does not belong to session %s", id)
	case !ss.s.now().Before(se.expires):
		return nil, errorf(http.StatusForbidden, protocol.CodeForbidden, "session %s expired", id)
	case !slices.Contains(se.ports, port):
		return nil, errorf(http.StatusForbidden, protocol.CodeForbidden, "port %d is not part of session %s (ports %v)", port, id, se.ports)
	}
	return se, nil
}

func (ss *sessions) track(se *session, c net.Conn, on bool) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if on {
		if se.ended() {
			return false
		}
		se.streams[c] = struct{}{}
	} else {
		delete(se.streams, c)
	}
	return true
}

func (ss *sessions) view(se *session, withToken bool) protocol.Session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	v := protocol.Session{ID: se.id, Runner: se.runner, Ports: slices.Clone(se.ports), ExpiresAt: se.expires.UTC(),
		IdleTimeout: protocol.Duration(se.idle), LastActive: se.lastActive.load().UTC(), Operators: slices.Clone(se.operators),
		Streams: len(se.streams)}
	if withToken {
		v.Token = se.token
	}
	return v
}

// runIdle ends sessions whose streams moved no byte for their idle timeout
// (an open but silent connection does not keep a session alive), and
// sessions past their lifetime.
func (ss *sessions) runIdle(ctx context.Context) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			ss.mu.Lock()
			all := make([]*session, 0, len(ss.by))
			for _, se := range ss.by {
				all = append(all, se)
			}
			ss.mu.Unlock()
			for _, se := range all {
				ss.end(se, "gateway stopping")
			}
			return nil
		case <-t.C:
		}
		now := ss.s.now()
		ss.mu.Lock()
		var idle, expired []*session
		for _, se := range ss.by {
			switch {
			case !now.Before(se.expires):
				expired = append(expired, se)
			case now.Sub(se.lastActive.load()) >= se.idle:
				idle = append(idle, se)
			}
		}
		ss.mu.Unlock()
		for _, se := range idle {
			ss.end(se, "idle for "+se.idle.String())
		}
		for _, se := range expired {
			ss.end(se, "lifetime over")
		}
	}
}

// activeConn records traffic on a session stream for the idle timer.
type activeConn struct {
	net.Conn
	se  *session
	now func() time.Time
}

func (c *activeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.se.lastActive.store(c.now())
	}
	return n, err
}

func (c *activeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.se.lastActive.store(c.now())
	}
	return n, err
}

func (c *activeConn) CloseWrite() error {
	tunnelio.CloseWrite(c.Conn)
	return nil
}

// atomicTime is a time.Time readable and writable concurrently.
type atomicTime struct {
	mu sync.Mutex
	t  time.Time
}

func (a *atomicTime) store(t time.Time) { a.mu.Lock(); a.t = t; a.mu.Unlock() }
func (a *atomicTime) load() time.Time   { a.mu.Lock(); defer a.mu.Unlock(); return a.t }

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%q is not a TCP port", s)
	}
	return p, nil
}
