package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/leashpki/leash/internal/enroll"
	"github.com/leashpki/leash/protocol"
)

// rotate keeps the certificate fresh: at about two thirds of its lifetime
// it renews over mTLS with a new key, persists the result and swaps it in.
// A gateway it cannot reach is retried with capped backoff while the
// current certificate stays in use; a refusal, or a certificate that
// expires before renewal succeeds, stops the runner with a fatal error
// that says a new token is needed.
func (a *Agent) rotate(ctx context.Context) error {
	for {
		leaf := a.source.Load().Leaf
		// Lifetimes count from when the runner obtained the certificate:
		// the CA backdates NotBefore for clock skew, and counting from it
		// would renew a short-lived certificate almost at once.
		from := a.obtained
		if from.Before(leaf.NotBefore) || from.After(leaf.NotAfter) {
			from = leaf.NotBefore
		}
		at := randomRenewAt(from, leaf.NotAfter)
		a.log.Debug("renewal scheduled", "at", at.UTC(), "serial", leaf.SerialNumber.String())
		var reply chan error
		timer := time.NewTimer(time.Until(at))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		case reply = <-a.rotateReq:
			timer.Stop()
		}
		err := a.renewUntilDone(ctx)
		if reply != nil {
			reply <- err
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// renewUntilDone renews, retrying what can get better, until it succeeds,
// ctx ends, or the failure is fatal.
func (a *Agent) renewUntilDone(ctx context.Context) error {
	a.renewRetry.Reset()
	for {
		err := a.renew(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		leaf := a.source.Load().Leaf
		if fatalRefusal(err) {
			a.events.add(protocol.Event{Kind: protocol.EventRotation, Level: "error", Message: "renewal refused: " + err.Error()})
			return fmt.Errorf("%w: renewal refused, the runner needs a new enrollment token ('leash token create %s'): %w",
				ErrNeedToken, a.cfg.Name, err)
		}
		if !a.now().Before(leaf.NotAfter) {
			return fmt.Errorf("%w: the certificate expired at %s before it could be renewed (last error: %w); the runner needs a new enrollment token ('leash token create %s')",
				ErrNeedToken, leaf.NotAfter.UTC().Format(time.RFC3339), err, a.cfg.Name)
		}
		delay := a.renewRetry.next()
		if left := time.Until(leaf.NotAfter); delay > left/2 {
			delay = max(left/2, 100*time.Millisecond)
		}
		a.log.Warn("renewal failed; keeping the current certificate and retrying", "err", err, "retry_in", delay,
			"not_after", leaf.NotAfter.UTC())
		a.events.add(protocol.Event{Kind: protocol.EventRotation, Level: "warn",
			Message: fmt.Sprintf("renewal failed, retrying in %s: %v", delay.Round(time.Millisecond), err)})
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// renew asks for a certificate for a new key over the current mTLS
// identity, persists it, then swaps it in for every later handshake.
func (a *Agent) renew(ctx context.Context) error {
	key, err := newKey()
	if err != nil {
		return err
	}
	csr, err := newCSR(key, a.cfg.Name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var resp protocol.CertificateResponse
	if _, err := a.call(ctx, http.MethodPost, "/v1/renew", protocol.RenewRequest{CSR: pemCSR(csr)}, "", &resp); err != nil {
		return err
	}
	chain, err := enroll.ParseChain([]byte(resp.Certificate))
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	if err := verifyChain(chain, a.root, a.cfg.Name); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	cert, err := pairFromChain(key, chain)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	// Persist first: a crash after the swap must not lose the new key.
	if err := saveIdentity(a.cfg.StateDir, identity{cert: cert, root: a.root}); err != nil {
		return fmt.Errorf("%w: renewed but cannot persist: %w", ErrFatal, err)
	}
	old := a.source.Load().Leaf
	if err := a.source.Store(cert); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	a.obtained = time.Now()
	a.transport.rotate()
	a.rotation.rotated()
	a.log.Info("certificate renewed", "old_serial", old.SerialNumber.String(), "serial", chain[0].SerialNumber.String(),
		"not_after", chain[0].NotAfter.UTC())
	a.events.add(protocol.Event{Kind: protocol.EventRotation, Level: "info",
		Message: fmt.Sprintf("renewed: serial %s valid until %s", chain[0].SerialNumber, chain[0].NotAfter.UTC().Format(time.RFC3339))})
	return nil
}

// renewNow asks the rotation loop for an immediate renewal and waits for
// its outcome.
func (a *Agent) renewNow(ctx context.Context) error {
	if a.root == nil {
		return errors.New("this runner does not rotate: it uses certificate files it was given, or no certificate")
	}
	reply := make(chan error, 1)
	select {
	case a.rotateReq <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
