package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/gateway/ui"
	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// uiCSRFKeyBlob holds the UI's CSRF key, shared by the replicas so that a
// form from one is accepted by another.
const uiCSRFKeyBlob = "ui/csrf-key"

// mountUI builds the browser UI handler when the UI is enabled.
func (s *Server) mountUI() error {
	if !s.cfg.UI.Enabled {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key, err := s.uiCSRFKey(ctx)
	if err != nil {
		return err
	}
	proxies, _ := s.cfg.UI.trustedProxies() // Validate reported any error
	in := ui.Install{GatewayURL: s.publicURL(s.apiLn), RootFingerprint: s.ca.RootFingerprint()}
	if s.enrollLn != nil {
		in.EnrollURL = s.publicURL(s.enrollLn)
	}
	if p := s.cfg.UI.RunnerBinary; p != "" {
		if in.RunnerBinarySHA256, err = fileSHA256(p); err != nil {
			return fmt.Errorf("ui runner binary: %w", err)
		}
	}
	h, err := ui.New(ui.Options{Backend: uiBackend{s}, Log: s.log.With("component", "ui"), Prefix: s.cfg.UI.Prefix,
		TrustedProxies: proxies, CSRFKey: key, Install: in, Now: s.now, Done: s.stopping})
	if err != nil {
		return err
	}
	s.ui = h
	return nil
}

// publicURL names a listener for runners: the first configured hostname
// and the listener's port.
func (s *Server) publicURL(ln net.Listener) string {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return "https://" + net.JoinHostPort(s.cfg.Hostnames[0], port)
}

// uiCSRFKey reads the shared CSRF key, creating it on first use. Two
// replicas starting together may both write; each then re-reads, and the
// last write wins for both.
func (s *Server) uiCSRFKey(ctx context.Context) ([]byte, error) {
	b, err := s.st.Blob(ctx, uiCSRFKeyBlob)
	if err == nil && len(b.Value) >= 32 {
		return b.Value, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("ui csrf key: %w", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := s.st.PutBlob(ctx, store.BlobRecord{Key: uiCSRFKeyBlob, Value: key, Modified: s.now().UTC()}); err != nil {
		return nil, fmt.Errorf("ui csrf key: %w", err)
	}
	if b, err = s.st.Blob(ctx, uiCSRFKeyBlob); err != nil {
		return nil, fmt.Errorf("ui csrf key: %w", err)
	}
	return b.Value, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// withUI routes /ui/ to the UI and everything else to api.
func withUI(api, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(ui.MountPath+"/", http.StripPrefix(ui.MountPath, h))
	mux.Handle(ui.MountPath, http.RedirectHandler(ui.MountPath+"/", http.StatusMovedPermanently))
	mux.Handle("/", api)
	return mux
}

// uiBackend implements ui.Backend on the gateway's store and CA, with the
// same functions as the operator API.
type uiBackend struct{ s *Server }

func (b uiBackend) Runners(ctx context.Context) ([]protocol.Runner, error) {
	rs, err := b.s.st.Runners(ctx, store.RunnerQuery{})
	if err != nil {
		return nil, err
	}
	out := make([]protocol.Runner, 0, len(rs))
	for _, r := range rs {
		out = append(out, runnerView(r))
	}
	return out, nil
}

func (b uiBackend) Runner(ctx context.Context, id string) (protocol.Runner, error) {
	r, err := b.s.st.Runner(ctx, id)
	if err != nil {
		return protocol.Runner{}, fmt.Errorf("runner %s: %w", id, err)
	}
	return runnerView(r), nil
}

func (b uiBackend) Events(ctx context.Context, runner string, afterSeq int64, limit int) ([]store.EventRecord, error) {
	return b.s.st.Events(ctx, store.EventQuery{RunnerID: runner, AfterSeq: afterSeq, Limit: limit})
}

func (b uiBackend) Jobs(ctx context.Context, runner string, limit int) ([]protocol.Job, error) {
	js, err := b.s.st.Jobs(ctx, store.JobQuery{Runner: runner, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]protocol.Job, 0, len(js))
	for _, j := range js {
		out = append(out, jobView(j))
	}
	return out, nil
}

func (b uiBackend) Containers(ctx context.Context, runner string) ([]protocol.Container, error) {
	if b.s.checkDeclared(ctx, runner, protocol.StreamDocker) != nil {
		return nil, nil // no Docker API declared (or not connected): nothing to list
	}
	l, err := b.s.listContainers(ctx, runner)
	return l.Containers, err
}

func (b uiBackend) Domains(_ context.Context, runner string) ([]protocol.Domain, error) {
	var out []protocol.Domain
	for _, d := range b.s.domains.list() {
		if d.Runner == runner {
			out = append(out, d)
		}
	}
	return out, nil
}

func (b uiBackend) Session(ctx context.Context, runner string) (protocol.SessionStatus, error) {
	return b.s.sessionStatusOf(ctx, runner)
}

func parseReason(s string) (ca.Reason, error) {
	if s == "" {
		return ca.ReasonUnspecified, nil
	}
	r, err := ca.ParseReason(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ui.ErrInvalid, err)
	}
	return r, nil
}

func (b uiBackend) RevokeRunner(ctx context.Context, id, reason, actor string) error {
	r, err := parseReason(reason)
	if err != nil {
		return err
	}
	_, err = b.s.revokeRunnerCerts(context.WithoutCancel(ctx), id, r, "", actor)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		return fmt.Errorf("%s: %w", ae.msg, ui.ErrNotFound)
	}
	return err
}

func (b uiBackend) Certificates(ctx context.Context, limit int) ([]ca.CertInfo, error) {
	return b.s.ca.Certificates(ctx, ca.InventoryQuery{Limit: limit})
}

// RevokeCert revokes one certificate and closes the connections that
// use it, as 'leash cert revoke' plus the live cut-off.
func (b uiBackend) RevokeCert(ctx context.Context, serial, reason, text, actor string) error {
	r, err := parseReason(reason)
	if err != nil {
		return err
	}
	sn, err := ca.ParseSerial(serial)
	if err != nil {
		return fmt.Errorf("%w: %w", ui.ErrInvalid, err)
	}
	if len(text) > 200 {
		return fmt.Errorf("%w: the note is longer than 200 characters", ui.ErrInvalid)
	}
	ctx = context.WithoutCancel(ctx)
	ci, err := b.s.ca.Certificate(ctx, sn)
	if errors.Is(err, ca.ErrNotFound) {
		return fmt.Errorf("no certificate with serial %s: %w", sn, ui.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if _, err := b.s.ca.Revoke(ctx, sn, r, text); err != nil {
		if errors.Is(err, ca.ErrAlreadyRevoked) {
			return fmt.Errorf("%w: certificate %s is already revoked", ui.ErrInvalid, sn)
		}
		return err
	}
	closed := b.s.conns.closeSerial(sn, "revoked")
	b.s.audit(ctx, actor, "cert.revoke", sn, fmt.Sprintf("%s %s reason %s", ci.Profile, ci.Subject, r))
	b.s.log.Info("certificate revoked", "serial", sn, "subject", ci.Subject, "actor", actor, "closed_connections", closed)
	return nil
}

func (b uiBackend) CRL(ctx context.Context) ([]byte, error) {
	crl, err := b.s.ca.CRL(ctx)
	return crl.DER, err
}

func (b uiBackend) Tokens(ctx context.Context) ([]ca.TokenInfo, error) {
	return b.s.ca.Tokens(ctx, ca.TokenQuery{Kind: ca.TokenEnroll})
}

func (b uiBackend) CreateToken(ctx context.Context, name string, regenerate bool, actor string) (ca.Token, error) {
	if err := leashtls.ValidName(name); err != nil {
		return ca.Token{}, fmt.Errorf("%w: %w", ui.ErrInvalid, err)
	}
	ctx = context.WithoutCancel(ctx)
	var revoked []string
	if regenerate {
		old, err := b.s.ca.Tokens(ctx, ca.TokenQuery{Kind: ca.TokenEnroll, Subject: name})
		if err != nil {
			return ca.Token{}, err
		}
		for _, t := range old {
			if t.State != ca.TokenPending || t.Profile != ca.ProfileRunner {
				continue
			}
			if err := b.s.ca.RevokeToken(ctx, t.ID); err != nil {
				return ca.Token{}, err
			}
			revoked = append(revoked, t.ID)
		}
	}
	tok, err := b.s.ca.CreateToken(ctx, ca.TokenRequest{Profile: ca.ProfileRunner, Subject: name})
	if err != nil {
		return ca.Token{}, err
	}
	detail := "token " + tok.ID
	if len(revoked) > 0 {
		detail += " replacing " + strings.Join(revoked, ",")
	}
	b.s.audit(ctx, actor, "token.create", name, detail)
	return tok, nil
}

func (b uiBackend) RevokeToken(ctx context.Context, id, actor string) error {
	ctx = context.WithoutCancel(ctx)
	if err := b.s.ca.RevokeToken(ctx, id); err != nil {
		if errors.Is(err, ca.ErrNotFound) {
			return fmt.Errorf("no pending token %s: %w", id, ui.ErrNotFound)
		}
		return err
	}
	b.s.audit(ctx, actor, "token.revoke", id, "")
	return nil
}

func (b uiBackend) Audit(ctx context.Context, limit int) ([]store.AuditRecord, error) {
	return b.s.st.AuditLog(ctx, store.AuditQuery{Limit: limit})
}
