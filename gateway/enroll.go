package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
)

// enrollHandler serves the enrollment listener: root download and token
// enrollment, in Leash's and step's dialects, and nothing else.
func (s *Server) enrollHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(protocol.RouteEnrollRoot, func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("sha") != s.ca.RootFingerprint() {
			s.writeError(w, r, errorf(http.StatusNotFound, protocol.CodeNotFound, "this gateway's CA has no root with that fingerprint"))
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(ca.EncodeCerts(s.ca.Root()))
	})
	mux.HandleFunc(protocol.RouteStepRoot, func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("sha") != s.ca.RootFingerprint() {
			s.writeError(w, r, errorf(http.StatusNotFound, protocol.CodeNotFound, "this gateway's CA has no root with that fingerprint"))
			return
		}
		writeJSON(w, http.StatusOK, protocol.StepRoot{CA: string(ca.EncodeCerts(s.ca.Root()))})
	})
	// The CRL is public, like any CRL: a runner whose handshake is refused
	// asks it whether it was revoked (crypto/tls sends the same
	// bad_certificate alert for every refusal).
	mux.HandleFunc(protocol.RouteEnrollCRL, func(w http.ResponseWriter, r *http.Request) {
		crl, err := s.ca.CRL(r.Context())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(crl.DER)
	})
	mux.HandleFunc(protocol.RouteEnroll, func(w http.ResponseWriter, r *http.Request) {
		var req protocol.EnrollRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		iss, err := s.enroll(r.Context(), req.Token, req.CSR)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.certificateResponse(iss))
	})
	mux.HandleFunc(protocol.RouteStepSign, func(w http.ResponseWriter, r *http.Request) {
		var req protocol.StepSignRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		iss, err := s.enroll(r.Context(), req.OTT, req.CSR)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		resp := protocol.StepSignResponse{Crt: string(ca.EncodeCerts(iss.Leaf)), CA: string(ca.EncodeCerts(s.ca.Intermediate()))}
		for _, c := range iss.Chain {
			resp.CertChain = append(resp.CertChain, string(ca.EncodeCerts(c)))
		}
		writeJSON(w, http.StatusCreated, resp)
	})
	mux.HandleFunc("/", s.notFound)
	return mux
}

// enroll spends a token on a PEM CSR; refusals become clear 4xx answers.
func (s *Server) enroll(ctx context.Context, token, csrPEM string) (*ca.Issued, error) {
	if token == "" || csrPEM == "" {
		s.m.enrollments.WithLabelValues("bad_request").Inc()
		return nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "token and csr are required")
	}
	csr, err := ca.ParseCSR([]byte(csrPEM))
	if err != nil {
		s.m.enrollments.WithLabelValues("bad_request").Inc()
		return nil, errorf(http.StatusBadRequest, protocol.CodeBadRequest, "csr: %v", err)
	}
	iss, err := s.ca.Enroll(ctx, token, csr)
	if err != nil {
		result, apiErr := classifyCAError(err)
		s.m.enrollments.WithLabelValues(result).Inc()
		s.log.Info("enrollment refused", "reason", result, "err", err)
		return nil, apiErr
	}
	s.m.enrollments.WithLabelValues("ok").Inc()
	id := iss.Leaf.Subject.CommonName
	s.audit(ctx, "leash://"+iss.Profile+"/"+id, "enroll", id, "serial "+iss.Leaf.SerialNumber.String())
	s.log.Info("enrolled", "profile", iss.Profile, "subject", id, "serial", iss.Leaf.SerialNumber.String())
	return iss, nil
}

// classifyCAError maps CA errors to a metric result and an API error.
func classifyCAError(err error) (string, error) {
	switch {
	case errors.Is(err, ca.ErrTokenUsed):
		return "token_used", errorf(http.StatusForbidden, protocol.CodeTokenRefused, "%v", err)
	case errors.Is(err, ca.ErrTokenExpired):
		return "token_expired", errorf(http.StatusForbidden, protocol.CodeTokenRefused, "%v", err)
	case errors.Is(err, ca.ErrTokenRevoked):
		return "token_revoked", errorf(http.StatusForbidden, protocol.CodeTokenRefused, "%v", err)
	case errors.Is(err, ca.ErrTokenInvalid):
		return "token_invalid", errorf(http.StatusForbidden, protocol.CodeTokenRefused, "%v", err)
	case errors.Is(err, ca.ErrPolicy), errors.Is(err, ca.ErrRenewal):
		return "policy", errorf(http.StatusForbidden, protocol.CodePolicy, "%v", err)
	}
	return "error", err
}

func (s *Server) certificateResponse(iss *ca.Issued) protocol.CertificateResponse {
	return protocol.CertificateResponse{Certificate: string(iss.ChainPEM()), CA: string(ca.EncodeCerts(s.ca.Root())),
		Serial: iss.Leaf.SerialNumber.String(), NotAfter: iss.Leaf.NotAfter.UTC()}
}

// renew serves POST /v1/renew: a new certificate for the caller's verified
// identity and the key in the CSR.
func (s *Server) renew(w http.ResponseWriter, r *http.Request, c caller) error {
	if !c.verified || len(r.TLS.PeerCertificates) == 0 {
		return errorf(http.StatusForbidden, protocol.CodeForbidden, "renewal needs mTLS: the certificate to renew is the one this connection presents")
	}
	var req protocol.RenewRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.m.renewals.WithLabelValues("bad_request").Inc()
		return err
	}
	csr, err := ca.ParseCSR([]byte(req.CSR))
	if err != nil {
		s.m.renewals.WithLabelValues("bad_request").Inc()
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "csr: %v", err)
	}
	cur := r.TLS.PeerCertificates[0]
	iss, err := s.ca.Renew(r.Context(), cur, csr.PublicKey)
	if err != nil {
		result, apiErr := classifyCAError(err)
		s.m.renewals.WithLabelValues(result).Inc()
		return apiErr
	}
	s.m.renewals.WithLabelValues("ok").Inc()
	s.audit(r.Context(), c.actor(), "renew", c.id.Name, "serial "+cur.SerialNumber.String()+" -> "+iss.Leaf.SerialNumber.String())
	writeJSON(w, http.StatusOK, s.certificateResponse(iss))
	return nil
}

// audit appends an audit row; a failure is logged, never fatal to the
// request it describes.
func (s *Server) audit(ctx context.Context, actor, action, target, detail string) {
	err := s.st.AppendAudit(context.WithoutCancel(ctx), store.AuditRecord{Time: s.now().UTC(), Actor: actor,
		Action: action, Target: target, Detail: detail})
	if err != nil {
		s.log.Error("audit log write failed", "action", action, "target", target, "err", err)
	}
}
