package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Exit codes of the leash-runner command.
const (
	ExitOK        = 0
	ExitError     = 1 // a fatal error
	ExitConfig    = 2 // bad flags, environment or config file
	ExitNeedToken = 3 // no usable identity: a new enrollment token is needed
)

// Main is the leash-runner command: it reads flags (args without the
// program name), LEASH_* variables from environ and the config file, logs
// JSON to stderr and runs the Agent until ctx ends. It returns the exit
// code.
func Main(ctx context.Context, version string, args, environ []string, stderr io.Writer) int {
	cfg, err := LoadConfig(args, environ, stderr)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "leash-runner:", err)
		return ExitConfig
	}
	if err := cfg.Validate(); err != nil {
		_, _ = fmt.Fprintln(stderr, "leash-runner:", err)
		return ExitConfig
	}
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	agent, err := New(cfg, WithLogger(log), WithVersion(version))
	if err != nil {
		log.Error("cannot start", "err", err)
		return ExitConfig
	}
	log.Info("leash-runner starting", "version", version, "runner", cfg.Name, "gateway", cfg.Gateway, "state_dir", cfg.StateDir)
	err = agent.Run(ctx)
	switch {
	case err == nil || errors.Is(err, context.Canceled):
		log.Info("leash-runner stopped")
		return ExitOK
	case errors.Is(err, ErrNeedToken):
		log.Error("stopped: a new enrollment token is needed", "err", err)
		return ExitNeedToken
	default:
		log.Error("stopped", "err", err)
		return ExitError
	}
}
