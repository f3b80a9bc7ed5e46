package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

var (
	runnerOnly   = []leashtls.Role{leashtls.RoleRunner}
	operatorOnly = []leashtls.Role{leashtls.RoleOperator}
	anyClient    []leashtls.Role
)

// maxEventBatch bounds the lines of one events request.
const maxEventBatch = 1000

// apiHandler routes the API listener.
func (s *Server) apiHandler() http.Handler {
	mux := http.NewServeMux()
	s.handle(mux, protocol.RouteHealth, anyClient, s.health)
	s.handle(mux, protocol.RouteReady, anyClient, s.ready)
	s.handle(mux, protocol.RouteRegister, runnerOnly, s.register)
	s.handle(mux, protocol.RouteHeartbeat, runnerOnly, s.heartbeat)
	s.handle(mux, protocol.RouteEvents, runnerOnly, s.events)
	s.handle(mux, protocol.RouteJobNext, runnerOnly, s.nextJob)
	s.handle(mux, protocol.RouteJobResult, runnerOnly, s.jobResult)
	s.handle(mux, protocol.RouteTunnel, runnerOnly, s.tunnelHandler)
	s.handle(mux, protocol.RouteConnect, operatorOnly, s.connectHandler)
	s.handle(mux, protocol.RouteSessionConnect, operatorOnly, s.sessionConnect)
	s.handle(mux, protocol.RouteSessionStatus, operatorOnly, s.sessionStatus)
	s.handle(mux, protocol.RouteSessionDisconnect, operatorOnly, s.sessionDisconnect)
	s.handle(mux, protocol.RouteSessionPort, operatorOnly, s.sessionPort)
	s.handle(mux, protocol.RouteSessionPorts, operatorOnly, s.setSessionPorts)
	s.handle(mux, protocol.RouteDocker, operatorOnly, s.dockerAPI)
	s.handle(mux, protocol.RouteContainers, operatorOnly, s.containers)
	s.handle(mux, protocol.RouteDomains, operatorOnly, s.listDomains)
	s.handle(mux, protocol.RouteDomain, operatorOnly, s.getDomain)
	s.handle(mux, protocol.RouteDomainPut, operatorOnly, s.putDomainHandler)
	s.handle(mux, protocol.RouteDomainDelete, operatorOnly, s.deleteDomain)
	s.handle(mux, protocol.RouteRenew, []leashtls.Role{leashtls.RoleRunner, leashtls.RoleOperator,
		leashtls.RolePrometheus, leashtls.RoleUIProxy}, s.renew)
	s.handle(mux, protocol.RouteRunners, operatorOnly, s.listRunners)
	s.handle(mux, protocol.RouteRunner, operatorOnly, s.getRunner)
	s.handle(mux, protocol.RouteRunnerRevoke, operatorOnly, s.revokeRunner)
	s.handle(mux, protocol.RouteJobSubmit, operatorOnly, s.submitJob)
	s.handle(mux, protocol.RouteJobs, operatorOnly, s.listJobs)
	s.handle(mux, protocol.RouteJob, operatorOnly, s.getJob)
	metrics := s.metricsHandler()
	s.handle(mux, protocol.RouteMetrics, []leashtls.Role{leashtls.RolePrometheus, leashtls.RoleOperator},
		func(w http.ResponseWriter, r *http.Request, _ caller) error {
			metrics.ServeHTTP(w, r)
			return nil
		})
	mux.HandleFunc("/", s.notFound)
	return mux
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request, _ caller) error {
	writeJSON(w, http.StatusOK, protocol.Health{Status: "ok", GatewayID: s.cfg.ID, Version: s.cfg.Version})
	return nil
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request, _ caller) error {
	h := protocol.Health{Status: "ok", GatewayID: s.cfg.ID, Version: s.cfg.Version}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		h.Problems = append(h.Problems, "store: "+err.Error())
	}
	if s.certs != nil {
		h.Problems = append(h.Problems, s.certs.problems(s.now())...)
	}
	status := http.StatusOK
	if len(h.Problems) > 0 {
		h.Status, status = "unavailable", http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
	return nil
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, c caller) error {
	var req protocol.RegisterRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := validateRegister(req); err != nil {
		return err
	}
	rec := store.RunnerRecord{ID: c.id.Name, Hostname: req.Hostname, OS: req.OS, Arch: req.Arch, Version: req.Version,
		Labels: req.Labels, Capabilities: req.Capabilities, CertSerial: c.id.Serial, LastSeen: s.now().UTC()}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		rec.CertNotAfter = r.TLS.PeerCertificates[0].NotAfter.UTC()
	}
	prev, err := s.st.RegisterRunner(r.Context(), rec)
	if err != nil {
		return err
	}
	// A revocation may have landed between this connection's handshake and
	// the write above; checking after the write means one of the two
	// always sees the other, so a revoked runner never stays online.
	// The check and the correction must land even when the revocation has
	// just closed this connection and so cancelled r's context.
	if c.verified {
		ctx := context.WithoutCancel(r.Context())
		if revoked, err := s.ca.IsRevoked(ctx, c.id.Serial); err != nil {
			return err
		} else if revoked {
			if err := s.st.SetRunnerStatus(ctx, c.id.Name, protocol.RunnerRevoked); err != nil {
				return err
			}
			return errorf(http.StatusForbidden, protocol.CodeForbidden, "certificate serial %s is revoked", c.id.Serial)
		}
	}
	s.audit(r.Context(), c.actor(), "register", c.id.Name, fmt.Sprintf("host %s %s/%s %s", req.Hostname, req.OS, req.Arch, req.Version))
	if prev == protocol.RunnerOffline {
		s.audit(r.Context(), "gateway", "online", c.id.Name, "registered again")
	}
	s.capabilities.set(c.id.Name, req.Capabilities, s.now())
	s.log.Info("runner registered", "runner", c.id.Name, "serial", c.id.Serial, "previous", prev)
	writeJSON(w, http.StatusOK, protocol.RegisterResponse{RunnerID: c.id.Name, GatewayID: s.cfg.ID,
		HeartbeatInterval: protocol.Duration(s.cfg.HeartbeatInterval), OfflineAfter: protocol.Duration(s.cfg.OfflineAfter)})
	return nil
}

func validateRegister(req protocol.RegisterRequest) error {
	var problems []string
	if req.Hostname == "" || len(req.Hostname) > 255 {
		problems = append(problems, "hostname must be 1-255 bytes")
	}
	if len(req.OS) > 64 || len(req.Arch) > 64 || len(req.Version) > 128 {
		problems = append(problems, "os, arch or version is too long")
	}
	if len(req.Labels) > protocol.MaxLabels {
		problems = append(problems, fmt.Sprintf("%d labels; at most %d", len(req.Labels), protocol.MaxLabels))
	}
	for k, v := range req.Labels {
		if k == "" || len(k)+len(v) > protocol.MaxLabelBytes {
			problems = append(problems, fmt.Sprintf("label %q is empty or longer than %d bytes", k, protocol.MaxLabelBytes))
		}
	}
	if len(req.Capabilities) > 256 {
		problems = append(problems, "too many capabilities")
	}
	if len(problems) > 0 {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "register: %v", problems)
	}
	return nil
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, c caller) error {
	var hb protocol.Heartbeat
	if err := decodeJSON(w, r, &hb); err != nil {
		return err
	}
	if hb.Load1 < 0 || hb.MemUsedBytes > hb.MemTotalBytes && hb.MemTotalBytes != 0 {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "heartbeat: negative load or used memory above total")
	}
	rec := store.HeartbeatRecord{RunnerID: c.id.Name, At: s.now().UTC(), Load1: hb.Load1, MemUsed: hb.MemUsedBytes,
		MemTotal: hb.MemTotalBytes, CertSerial: c.id.Serial}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		rec.CertNotAfter = r.TLS.PeerCertificates[0].NotAfter.UTC()
	}
	prev, err := s.st.Heartbeat(r.Context(), rec)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, protocol.CodeUnknownRunner, "runner %s has not registered; POST %s first", c.id.Name, "/v1/register")
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, protocol.CodeConflict, "runner %s is revoked", c.id.Name)
	case err != nil:
		return err
	}
	s.m.heartbeats.Inc()
	if prev == protocol.RunnerOffline {
		s.audit(r.Context(), "gateway", "online", c.id.Name, "heartbeat after being offline")
		s.log.Info("runner online", "runner", c.id.Name)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// events reads an ndjson stream, validates every line, then stores the
// batch at once: a bad line stores nothing.
func (s *Server) events(w http.ResponseWriter, r *http.Request, c caller) error {
	if err := checkContentType(r, protocol.ContentTypeNDJSON); err != nil {
		return err
	}
	if _, err := s.st.Runner(r.Context(), c.id.Name); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, protocol.CodeUnknownRunner, "runner %s has not registered; POST /v1/register first", c.id.Name)
	} else if err != nil {
		return err
	}
	sc := bufio.NewScanner(http.MaxBytesReader(w, r.Body, maxEventBatch*protocol.MaxEventLineBytes))
	sc.Buffer(make([]byte, 0, 4096), protocol.MaxEventLineBytes)
	var batch []store.EventRecord
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if len(batch) == maxEventBatch {
			return errorf(http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, "more than %d events in one request", maxEventBatch)
		}
		var e protocol.Event
		if err := decodeStrict(b, &e); err != nil {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "event line %d: %v; nothing stored", line, err)
		}
		if err := validateEvent(e); err != nil {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "event line %d: %v; nothing stored", line, err)
		}
		if e.Time.IsZero() {
			e.Time = s.now()
		}
		batch = append(batch, store.EventRecord{RunnerID: c.id.Name, Time: e.Time.UTC(), Kind: e.Kind, Level: e.Level,
			JobID: e.JobID, Stream: e.Stream, Message: e.Message, Data: e.Data})
	}
	if err := sc.Err(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) || errors.Is(err, bufio.ErrTooLong) {
			return errorf(http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, "event line %d is longer than %d bytes or the batch is too large; nothing stored", line+1, protocol.MaxEventLineBytes)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "event stream cut off; nothing stored")
		}
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "read events: %v; nothing stored", err)
	}
	if err := s.st.AppendEvents(r.Context(), batch); err != nil {
		return err
	}
	s.m.events.Add(float64(len(batch)))
	writeJSON(w, http.StatusOK, protocol.EventsAccepted{Accepted: len(batch)})
	return nil
}

func validateEvent(e protocol.Event) error {
	switch e.Kind {
	case protocol.EventLog, protocol.EventJobOutput, protocol.EventJobState, protocol.EventRotation, protocol.EventConnection:
	default:
		return fmt.Errorf("unknown kind %q", e.Kind)
	}
	switch e.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("unknown level %q", e.Level)
	}
	switch e.Stream {
	case "", "stdout", "stderr":
	default:
		return fmt.Errorf("unknown stream %q", e.Stream)
	}
	if len(e.Data) > protocol.MaxEventDataBytes || len(e.Message) > protocol.MaxEventDataBytes {
		return fmt.Errorf("data or message longer than %d bytes", protocol.MaxEventDataBytes)
	}
	if len(e.JobID) > 64 {
		return errors.New("job id too long")
	}
	return nil
}
