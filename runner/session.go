package runner

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/leashpki/leash/protocol"
)

func pemCSR(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// errReregister ends a session so that the next one registers again, at
// once: the gateway forgot the runner (a fresh database) or marked it
// revoked and then un-revoked.
var errReregister = errors.New("the gateway does not know this runner; registering again")

// connect runs sessions until ctx ends or one fails fatally. Between
// sessions it waits with exponential backoff and jitter (1 s to 30 s by
// default), reset after every session that registered.
func (a *Agent) connect(ctx context.Context) error {
	for {
		registered, err := a.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrFatal) || errors.Is(err, ErrNeedToken) {
			return err
		}
		if fatalRefusal(err) {
			return fmt.Errorf("%w: the gateway refuses this runner's certificate (revoked?); it needs a new enrollment token ('leash token create %s'): %w",
				ErrNeedToken, a.cfg.Name, err)
		}
		if refusedCertificate(err) && a.root != nil {
			revoked, cerr := a.revoked(ctx)
			switch {
			case revoked:
				a.log.Error("the gateway refuses this runner's certificate: it is revoked", "serial", a.Certificate().SerialNumber.String())
				return fmt.Errorf("%w: certificate serial %s is revoked; the runner needs a new enrollment token ('leash token create %s'), then remove %s and restart",
					ErrNeedToken, a.Certificate().SerialNumber, a.cfg.Name, identityFile)
			case cerr != nil:
				a.log.Warn("certificate refused; could not check the CRL", "err", cerr)
			}
		}
		if registered {
			a.reconnect.Reset()
		}
		if errors.Is(err, errReregister) {
			a.log.Info("registering again", "reason", err)
			continue
		}
		delay := a.reconnect.next()
		a.log.Warn("gateway unreachable; reconnecting", "err", err, "retry_in", delay)
		a.events.add(protocol.Event{Kind: protocol.EventConnection, Level: "warn",
			Message: fmt.Sprintf("reconnecting in %s after: %v", delay.Round(time.Millisecond), err)})
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// session registers, then heartbeats, streams events and long-polls jobs
// until one of them fails. It reports whether registration succeeded.
func (a *Agent) session(ctx context.Context) (bool, error) {
	var reg protocol.RegisterResponse
	if status, err := a.call(ctx, http.MethodPost, "/v1/register", a.registration(), "", &reg); err != nil {
		if status == http.StatusBadRequest {
			return false, fmt.Errorf("%w: the gateway refuses this runner's registration; fix the configuration: %w", ErrFatal, err)
		}
		return false, err
	}
	a.sessions.Add(1)
	interval := reg.HeartbeatInterval.D()
	if interval <= 0 {
		interval = 5 * time.Second
	}
	a.log.Info("registered", "gateway", reg.GatewayID, "runner", reg.RunnerID, "heartbeat_interval", interval)
	a.events.add(protocol.Event{Kind: protocol.EventConnection, Level: "info", Message: "connected to gateway " + reg.GatewayID})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.heartbeats(gctx, interval) })
	g.Go(func() error { return a.streamEvents(gctx) })
	g.Go(func() error { return a.pollJobs(gctx) })
	return true, g.Wait()
}

func (a *Agent) registration() protocol.RegisterRequest {
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown"
	}
	caps := []string{protocol.JobInfo}
	if a.root != nil {
		caps = append(caps, protocol.JobRotate)
	}
	for name := range a.cfg.Commands {
		caps = append(caps, protocol.JobExec+":"+name)
	}
	for name := range a.cfg.Services {
		caps = append(caps, protocol.StreamTCP+":"+name)
	}
	for name := range a.cfg.Domains {
		caps = append(caps, protocol.StreamHTTP+":"+name)
	}
	if a.docker != nil {
		caps = append(caps, protocol.StreamDocker)
	}
	for _, p := range a.cfg.SessionPorts {
		caps = append(caps, protocol.StreamPort+":"+strconv.Itoa(p))
	}
	slices.Sort(caps)
	return protocol.RegisterRequest{Hostname: host, OS: runtime.GOOS, Arch: runtime.GOARCH, Version: a.version,
		Labels: a.cfg.Labels, Capabilities: caps}
}

// heartbeats sends one heartbeat right away and then every interval.
func (a *Agent) heartbeats(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		load, used, total := vitals()
		hb := protocol.Heartbeat{Load1: load, MemUsedBytes: used, MemTotalBytes: total}
		if a.source.Load() != nil {
			hb.CertNotAfter = a.source.NotAfter().UTC()
		}
		hctx, cancel := context.WithTimeout(ctx, max(interval, 5*time.Second))
		_, err := a.call(hctx, http.MethodPost, "/v1/heartbeat", hb, "", nil)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case codeOf(err) == protocol.CodeUnknownRunner:
			return errReregister
		case statusOf(err) == http.StatusConflict:
			return fmt.Errorf("%w: the gateway says this runner is revoked; it needs a new enrollment token ('leash token create %s')",
				ErrNeedToken, a.cfg.Name)
		case err != nil:
			return fmt.Errorf("heartbeat: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pollWait is how long one long-poll asks the gateway to hold the request:
// the protocol's maximum, but never past the moment the current certificate
// expires (the gateway closes a connection then), with a margin.
func (a *Agent) pollWait() time.Duration {
	wait := protocol.MaxJobWait
	if a.source.Load() != nil {
		left := time.Until(a.source.NotAfter()) - 3*time.Second
		wait = min(wait, max(left, 0))
	}
	return wait.Truncate(time.Millisecond)
}

// pollJobs long-polls for jobs and hands each to a worker. It first
// reserves an idle worker, so it never claims a job it cannot start. A
// reservation outlives a session that ends before a job arrives (sessions
// run one after the other, so only one pollJobs touches a.held).
func (a *Agent) pollJobs(ctx context.Context) error {
	for {
		if a.held == nil {
			select {
			case a.held = <-a.idle:
			case <-ctx.Done():
				return nil
			}
		}
		wait := a.pollWait()
		var job protocol.Job
		pctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
		status, err := a.call(pctx, http.MethodGet, "/v1/jobs/next?wait="+wait.String(), nil, "", &job)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case codeOf(err) == protocol.CodeUnknownRunner:
			return errReregister
		case err != nil:
			return fmt.Errorf("job poll: %w", err)
		case status == http.StatusNoContent:
			continue
		}
		a.log.Info("job claimed", "job", job.ID, "kind", job.Kind, "command", job.Command, "attempt", job.Attempts)
		a.held <- job // buffered, the reserved worker is waiting for it
		a.held = nil
	}
}
