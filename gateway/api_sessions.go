package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/tunnelio"
	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// sessionConnect serves RouteSessionConnect: open or join the session.
func (s *Server) sessionConnect(w http.ResponseWriter, r *http.Request, c caller) error {
	var req protocol.SessionRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := leashtls.ValidName(req.Runner); err != nil {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "runner: %v", err)
	}
	if len(req.Ports) == 0 || len(req.Ports) > 16 {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "ask for 1 to 16 ports")
	}
	for _, p := range req.Ports {
		if p < 1 || p > 65535 {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "%d is not a TCP port", p)
		}
	}
	if d := req.IdleTimeout.D(); d != 0 && (d < time.Second || d > protocol.MaxSessionLifetime) {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "idle timeout %s: between 1s and %s", d, protocol.MaxSessionLifetime)
	}
	se, joined, err := s.sessions.open(r.Context(), req, c.actor())
	if err != nil {
		return err
	}
	action := "session.connect"
	if joined {
		action = "session.join"
	}
	s.audit(r.Context(), c.actor(), action, req.Runner, se.id+" ports "+jsonInts(req.Ports))
	writeJSON(w, http.StatusOK, s.sessions.view(se, true))
	return nil
}

func jsonInts(v []int) string { b, _ := json.Marshal(v); return string(b) }

// sessionStatus serves RouteSessionStatus.
func (s *Server) sessionStatus(w http.ResponseWriter, r *http.Request, _ caller) error {
	st, err := s.sessionStatusOf(r.Context(), r.URL.Query().Get("runner"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// sessionStatusOf is the session ports and live session of runner.
func (s *Server) sessionStatusOf(ctx context.Context, runner string) (protocol.SessionStatus, error) {
	allowed, err := s.allowedPorts(ctx, runner)
	if errors.Is(err, store.ErrNotFound) {
		return protocol.SessionStatus{}, errorf(http.StatusNotFound, protocol.CodeNotFound, "no runner %s", runner)
	}
	if err != nil {
		return protocol.SessionStatus{}, err
	}
	st := protocol.SessionStatus{AllowedPorts: allowed}
	s.sessions.mu.Lock()
	se := s.sessions.by[runner]
	s.sessions.mu.Unlock()
	if se != nil && !se.ended() {
		v := s.sessions.view(se, false)
		st.Up, st.Session = true, &v
	}
	if st.AllowedPorts == nil {
		st.AllowedPorts = []int{}
	}
	return st, nil
}

// sessionDisconnect serves RouteSessionDisconnect: tear the session down
// at once, or with leave=true only leave it (it ends with its last
// operator).
func (s *Server) sessionDisconnect(w http.ResponseWriter, r *http.Request, c caller) error {
	runner := r.URL.Query().Get("runner")
	s.sessions.mu.Lock()
	se := s.sessions.by[runner]
	last := false
	if se != nil && r.URL.Query().Get("leave") == "true" {
		se.operators = slices.DeleteFunc(se.operators, func(o string) bool { return o == c.actor() })
		last = len(se.operators) == 0
	}
	s.sessions.mu.Unlock()
	if se == nil || se.ended() {
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "runner %s has no live session", runner)
	}
	switch {
	case r.URL.Query().Get("leave") != "true":
		s.sessions.end(se, "disconnected by "+c.actor())
	case last:
		s.sessions.end(se, "left by its last operator "+c.actor())
	default:
		s.audit(r.Context(), c.actor(), "session.leave", runner, se.id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// sessionPort serves RouteSessionPort: one connection to a port of the
// session's runner, with the session token.
func (s *Server) sessionPort(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := checkUpgrade(r, protocol.StreamProtocol); err != nil {
		return err
	}
	port, err := parsePort(r.PathValue("port"))
	if err != nil {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "%v", err)
	}
	se, err := s.sessions.check(r.PathValue("id"), r.Header.Get(protocol.HeaderSessionToken), port)
	if err != nil {
		return err
	}
	stream, err := s.tunnels.dialKind(r.Context(), se.runner, protocol.StreamPort, r.PathValue("port"), c.actor())
	if err != nil {
		s.m.streams.WithLabelValues("refused").Inc()
		return streamError(se.runner, err)
	}
	conn, rw, done, err := s.hijack(w)
	if err != nil {
		_ = stream.Close()
		return err
	}
	defer done()
	_ = conn.SetDeadline(time.Time{})
	tracked := &activeConn{Conn: stream, se: se, now: s.now}
	if !s.sessions.track(se, tracked, true) {
		_ = stream.Close()
		_ = conn.Close()
		return nil
	}
	s.m.streams.WithLabelValues("ok").Inc()
	if err := writeSwitching(rw, protocol.StreamProtocol); err == nil {
		s.buffers.Splice(tunnelio.Buffered(conn, rw.Reader), tracked)
	}
	s.sessions.track(se, tracked, false)
	s.conns.untrack(conn)
	_ = conn.Close()
	_ = stream.Close()
	return nil
}

// setSessionPorts serves RouteSessionPorts: the operator override.
func (s *Server) setSessionPorts(w http.ResponseWriter, r *http.Request, c caller) error {
	var req protocol.SessionPorts
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	runner := r.PathValue("id")
	if _, err := s.st.Runner(r.Context(), runner); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no runner %s", runner)
	} else if err != nil {
		return err
	}
	key := sessionACLPrefix + runner
	if len(req.Ports) == 0 {
		if err := s.st.DeleteBlob(r.Context(), key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	} else {
		for _, p := range req.Ports {
			if p < 1 || p > 65535 {
				return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "%d is not a TCP port", p)
			}
		}
		b, _ := json.Marshal(req)
		if err := s.st.PutBlob(r.Context(), store.BlobRecord{Key: key, Value: b, Modified: s.now().UTC()}); err != nil {
			return err
		}
	}
	s.audit(r.Context(), c.actor(), "session.ports", runner, jsonInts(req.Ports))
	allowed, err := s.allowedPorts(r.Context(), runner)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, protocol.SessionPorts{Ports: allowed})
	return nil
}
