// Package cli is the leash command line: it initialises the CA, issues,
// renews, revokes and inspects certificates, manages one-time enrollment
// tokens, and (in later issues) drives the gateway.
//
// The package builds a urfave/cli/v2 App; cmd/leash only wires it to the
// process (arguments, signals, exit code). Every command has --help, every
// error says what is wrong and how to fix it, and commands whose output a
// script would parse accept --json.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	ucli "github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X .../cli.version=v1.2.3";
// it is the package's only variable and is never written at run time.
var version = "dev"

// Env is what the CLI needs from the process.
type Env struct {
	Stdout, Stderr io.Writer
	Logger         *slog.Logger // default: discard
}

// NewApp builds the leash command tree.
func NewApp(env Env) *ucli.App {
	if env.Logger == nil {
		env.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &runtime{env: env}
	app := &ucli.App{
		Name:                 "leash",
		Usage:                "PKI-centric mTLS gateway: CA, certificates, tokens, gateway and runners",
		Version:              version,
		Writer:               env.Stdout,
		ErrWriter:            env.Stderr,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		Flags:                r.globalFlags(),
		Commands: []*ucli.Command{
			r.caCommand(),
			r.certCommand(),
			r.tokenCommand(),
			r.loginCommand(),
			r.runnerCommand(),
			r.jobCommand(),
			r.connectCommand(),
			r.domainCommand(),
			r.dockerCommand(),
			r.gatewayCommand(),
			r.devCommand(),
			r.verifyCommand(),
		},
		// Errors are printed once, by Run, not by urfave's default handler.
		ExitErrHandler: func(*ucli.Context, error) {},
		OnUsageError: func(c *ucli.Context, err error, _ bool) error {
			return usageError{fmt.Errorf("%w\nrun '%s --help' for usage", err, c.Command.HelpName)}
		},
	}
	setUsageErrors(app.Commands)
	return app
}

// usageError marks an error in how the command was called (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// Run runs the app with args and returns the process exit code: 0 on
// success, 2 for usage errors, 1 for everything else. Errors go to Stderr.
func Run(ctx context.Context, env Env, args []string) int {
	app := NewApp(env)
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	fmt.Fprintf(env.Stderr, "leash: error: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	var ec ucli.ExitCoder
	if errors.As(err, &ec) && ec.ExitCode() != 0 {
		return ec.ExitCode()
	}
	return 1
}
