package testharness

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/leashpki/leash/runner"
	"github.com/leashpki/leash/runner/dockerproxy"
)

// Runner is one leash-runner Agent running in the test process.
type Runner struct {
	Name     string
	StateDir string
	Agent    *runner.Agent
	cfg      runner.Config
	cancel   context.CancelFunc
	done     chan error
}

// RunnerOptions adjust a runner's configuration.
type RunnerOptions struct {
	// Gateway overrides the API URL the runner dials (e.g. through a
	// proxy); default the gateway's own.
	Gateway string
	// StateDir reuses a state directory (a restart); default a new one.
	StateDir string
	// NoToken starts without a token (to reuse a persisted identity).
	NoToken bool
	// Token overrides the freshly minted token.
	Token string
	// TLSCA, TLSCert and TLSKey bring certificate files instead of
	// enrolling (FANGS style); no token is minted then.
	TLSCA, TLSCert, TLSKey string
	Commands               map[string][]string
	Services               map[string]string // declared TCP services, name → host:port
	Domains                map[string][]runner.Route
	SessionPorts           []int
	Docker                 *dockerproxy.Config
	Labels                 map[string]string
	Options                []runner.Option
}

// StartRunner enrolls (unless its state dir already holds an identity)
// and runs a runner named name against g.
func (h *Harness) StartRunner(t testing.TB, g *Gateway, name string, o ...RunnerOptions) *Runner {
	t.Helper()
	var opt RunnerOptions
	if len(o) > 0 {
		opt = o[0]
	}
	if opt.StateDir == "" {
		opt.StateDir = filepath.Join(t.TempDir(), name)
	}
	api := g.APIURL
	if opt.Gateway != "" {
		api = opt.Gateway
	}
	cfg := runner.Config{Name: name, Gateway: api, EnrollURL: g.EnrollURL, StateDir: opt.StateDir,
		Commands: opt.Commands, Services: opt.Services, Domains: opt.Domains, SessionPorts: opt.SessionPorts, Docker: opt.Docker, Labels: opt.Labels, JobTimeout: time.Minute}
	cfg.TLSCA, cfg.TLSCert, cfg.TLSKey = opt.TLSCA, opt.TLSCert, opt.TLSKey
	switch {
	case opt.TLSCert != "":
	case opt.Token != "":
		cfg.Token = opt.Token
	case !opt.NoToken:
		cfg.Token = h.Token(t, name)
	}
	return h.runRunner(t, cfg, opt.Options)
}

func (h *Harness) runRunner(t testing.TB, cfg runner.Config, extra []runner.Option) *Runner {
	t.Helper()
	opts := append([]runner.Option{runner.WithLogger(h.Log.With("runner", cfg.Name)), runner.WithVersion("test"),
		runner.WithReconnectBackoff(100*time.Millisecond, time.Second)}, extra...)
	a, err := runner.New(cfg, opts...)
	if err != nil {
		t.Fatalf("runner.New %s: %v", cfg.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{Name: cfg.Name, StateDir: cfg.StateDir, Agent: a, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	log := h.Log
	go func() {
		err := a.Run(ctx)
		if err != nil {
			log.Error("runner stopped", "runner", cfg.Name, "err", err)
		}
		r.done <- err
	}()
	t.Cleanup(func() { _ = r.Stop(t) })
	return r
}

// Stop stops the runner, waits for it and returns what Run returned
// (nil for a clean stop). Calling it again returns nil.
func (r *Runner) Stop(t testing.TB) error {
	t.Helper()
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		return err
	case <-time.After(30 * time.Second):
		t.Errorf("runner %s did not stop within 30s", r.Name)
		return errors.New("runner did not stop")
	}
}

// Exited reports whether the runner stopped by itself within wait, and
// what Run returned.
func (r *Runner) Exited(wait time.Duration) (bool, error) {
	select {
	case err := <-r.done:
		r.cancel = nil
		return true, err
	case <-time.After(wait):
		return false, nil
	}
}
