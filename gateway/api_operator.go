package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

func runnerView(r store.RunnerRecord) protocol.Runner {
	return protocol.Runner{ID: r.ID, Status: r.Status, Hostname: r.Hostname, OS: r.OS, Arch: r.Arch, Version: r.Version,
		Labels: r.Labels, Capabilities: r.Capabilities, CertSerial: r.CertSerial, CertNotAfter: r.CertNotAfter,
		FirstSeen: r.FirstSeen, LastSeen: r.LastSeen, Load1: r.Load1, MemUsedBytes: r.MemUsed, MemTotalBytes: r.MemTotal}
}

func (s *Server) listRunners(w http.ResponseWriter, r *http.Request, _ caller) error {
	status := r.URL.Query().Get("status")
	switch status {
	case "", protocol.RunnerOnline, protocol.RunnerOffline, protocol.RunnerRevoked:
	default:
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "status %q: online, offline or revoked", status)
	}
	rs, err := s.st.Runners(r.Context(), store.RunnerQuery{Status: status})
	if err != nil {
		return err
	}
	out := protocol.RunnerList{Runners: []protocol.Runner{}}
	for _, rn := range rs {
		out.Runners = append(out.Runners, runnerView(rn))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getRunner(w http.ResponseWriter, r *http.Request, _ caller) error {
	rn, err := s.st.Runner(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no runner %s", r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, runnerView(rn))
	return nil
}

// revokeRunner revokes every unexpired, unrevoked runner certificate of
// the runner, marks it revoked and closes its live connections.
func (s *Server) revokeRunner(w http.ResponseWriter, r *http.Request, c caller) error {
	id := r.PathValue("id")
	var req protocol.RevokeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	reason := ca.Reason(0)
	if req.Reason != "" {
		var err error
		if reason, err = ca.ParseReason(req.Reason); err != nil {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "%v", err)
		}
	}
	resp, err := s.revokeRunnerCerts(context.WithoutCancel(r.Context()), id, reason, req.Text, c.actor())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// revokeRunnerCerts revokes every unexpired, unrevoked runner certificate
// of runner id, marks it revoked, closes its live connections and audits
// it as actor (the API and the UI share it).
func (s *Server) revokeRunnerCerts(ctx context.Context, id string, reason ca.Reason, text, actor string) (protocol.RevokeResponse, error) {
	resp := protocol.RevokeResponse{Runner: id, Serials: []string{}}
	if _, err := s.st.Runner(ctx, id); errors.Is(err, store.ErrNotFound) {
		return resp, errorf(http.StatusNotFound, protocol.CodeNotFound, "no runner %s", id)
	} else if err != nil {
		return resp, err
	}
	certs, err := s.ca.Certificates(ctx, ca.InventoryQuery{Profile: ca.ProfileRunner, Subject: id})
	if err != nil {
		return resp, err
	}
	for _, ci := range certs {
		if ci.Status != ca.StatusValid && ci.Status != ca.StatusExpiring {
			continue
		}
		if _, err := s.ca.Revoke(ctx, ci.Serial, reason, text); err != nil && !errors.Is(err, ca.ErrAlreadyRevoked) {
			return resp, err
		}
		resp.Serials = append(resp.Serials, ci.Serial)
		resp.ClosedConnections += s.conns.closeSerial(ci.Serial, "revoked")
	}
	if err := s.st.SetRunnerStatus(ctx, id, protocol.RunnerRevoked); err != nil {
		return resp, err
	}
	s.audit(ctx, actor, "revoke", id, "serials "+strings.Join(resp.Serials, ",")+" reason "+reason.String())
	s.log.Info("runner revoked", "runner", id, "serials", resp.Serials, "closed_connections", resp.ClosedConnections)
	return resp, nil
}
