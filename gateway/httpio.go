package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// apiError is an error with its HTTP status and protocol code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, code, format string, a ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, a...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", protocol.ContentTypeJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with a protocol.Error; unexpected errors become 500
// and are logged, never shown.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = errorf(http.StatusInternalServerError, protocol.CodeInternal, "internal error; the gateway log has details")
	}
	writeJSON(w, ae.status, protocol.Error{Code: ae.code, Message: ae.msg})
}

// checkContentType requires the media type want.
func checkContentType(r *http.Request, want string) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != want {
		return errorf(http.StatusUnsupportedMediaType, protocol.CodeUnsupportedMedia,
			"Content-Type must be %s, got %q", want, r.Header.Get("Content-Type"))
	}
	return nil
}

// decodeJSON reads one JSON object of at most protocol.MaxBodyBytes into v,
// refusing unknown fields and trailing data.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := checkContentType(r, protocol.ContentTypeJSON); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, protocol.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errorf(http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, "body is larger than %d bytes", protocol.MaxBodyBytes)
	}
	if err != nil {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "read body: %v", err)
	}
	return decodeStrict(body, v)
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "malformed JSON: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "malformed JSON: trailing data after the object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "malformed JSON: trailing data after the object")
	}
	return nil
}

// caller is who is calling: the verified identity in mTLS mode, a claimed
// runner name or the local operator otherwise.
type caller struct {
	id       leashtls.Identity
	verified bool // identity from a verified certificate
}

func (c caller) actor() string {
	if !c.verified && c.id.Role == leashtls.RoleOperator {
		return "local-operator"
	}
	return c.id.String()
}

// identify works out the caller of r.
func (s *Server) identify(r *http.Request) (caller, error) {
	if s.cfg.Mode == leashtls.ModeMTLS {
		if r.TLS == nil {
			return caller{}, errorf(http.StatusUnauthorized, protocol.CodeUnauthenticated, "no TLS connection")
		}
		id, err := leashtls.PeerIdentity(*r.TLS)
		if err != nil {
			return caller{}, errorf(http.StatusUnauthorized, protocol.CodeUnauthenticated, "%v", err)
		}
		return caller{id: id, verified: true}, nil
	}
	if name := r.Header.Get(protocol.HeaderRunnerID); name != "" {
		if err := leashtls.ValidName(name); err != nil {
			return caller{}, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "%s: %v", protocol.HeaderRunnerID, err)
		}
		return caller{id: leashtls.Identity{Role: leashtls.RoleRunner, Name: name}}, nil
	}
	return caller{id: leashtls.Identity{Role: leashtls.RoleOperator, Name: "local"}}, nil
}

// handlerFunc is a route handler that knows its caller.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c caller) error

// handle registers pattern for the given roles (none = any caller).
func (s *Server) handle(mux *http.ServeMux, pattern string, roles []leashtls.Role, h handlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(protocol.HeaderGatewayID, s.cfg.ID)
		c, err := s.identify(r)
		if err == nil && len(roles) > 0 && !roleIn(c.id.Role, roles) {
			err = errorf(http.StatusForbidden, protocol.CodeForbidden, "role %s may not call %s", c.id.Role, pattern)
		}
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

func roleIn(r leashtls.Role, roles []leashtls.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

// notFoundHandler answers unknown paths with a protocol.Error.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, errorf(http.StatusNotFound, protocol.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
}

// handshakeLog receives http.Server's error log: TLS handshake failures
// that crypto/tls detects itself (no certificate, unknown CA, expired,
// plain HTTP) are counted by reason here; leashtls's own rejections were
// counted by OnReject already and are skipped.
type handshakeLog struct {
	s     *Server
	quiet bool // enrollment listener: count nothing
}

func (h *handshakeLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	const marker = "TLS handshake error from "
	i := strings.Index(line, marker)
	if i < 0 {
		h.s.log.Warn("http server", "msg", line)
		return len(p), nil
	}
	rest := line[i+len(marker):]
	if j := strings.Index(rest, ": "); j >= 0 {
		rest = rest[j+2:]
	}
	if h.quiet {
		return len(p), nil
	}
	if reason, ok := handshakeReason(rest); ok {
		h.s.m.handshakeFailures.WithLabelValues(string(reason)).Inc()
		h.s.log.Info("handshake refused", "reason", string(reason), "err", rest)
	}
	return len(p), nil
}

// handshakeReason classifies a handshake error text; ok is false for
// leashtls's own rejections, already counted.
func handshakeReason(text string) (leashtls.Reason, bool) {
	for _, own := range []error{leashtls.ErrRevoked, leashtls.ErrRevocationUnavailable, leashtls.ErrRoleDenied,
		leashtls.ErrInvalidIdentity, leashtls.ErrNoIdentity, leashtls.ErrAmbiguousIdentity, leashtls.ErrExpired,
		leashtls.ErrBadUsage, leashtls.ErrNoClientCert, leashtls.ErrNotVerified} {
		if strings.Contains(text, own.Error()) {
			return "", false
		}
	}
	switch {
	case strings.Contains(text, "unknown authority"):
		return leashtls.ReasonUnknownAuthority, true
	case strings.Contains(text, "expired or is not yet valid"):
		return leashtls.ReasonExpired, true
	case strings.Contains(text, "incompatible key usage"):
		return leashtls.ReasonBadUsage, true
	case strings.Contains(text, "EOF"), strings.Contains(text, "connection reset"):
		return leashtls.ReasonOther, true
	}
	return leashtls.FailureReason(errors.New(text)), true
}
