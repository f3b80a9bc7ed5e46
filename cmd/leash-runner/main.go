// Command leash-runner is the Leash runner: it dials out to a gateway,
// keeps its certificate fresh and runs the jobs it is given. All behaviour
// lives in package runner; main only wires the process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/leashpki/leash/runner"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runner.Main(ctx, version, os.Args[1:], os.Environ(), os.Stderr)
	stop()
	os.Exit(code)
}
