// Command leash-runner is the Leash runner: it dials out to a gateway,
// keeps its certificate fresh and runs the jobs it is given. All behaviour
// lives in package runner; main only wires the process (on Windows also to
// the service manager, through winsvc).
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/leashpki/leash/internal/winsvc"
	"github.com/leashpki/leash/runner"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	service := winsvc.Service{Name: "leash-runner", DisplayName: "Leash runner", Description: "Leash runner: dials out to a Leash gateway over mTLS"}
	code := winsvc.Main(ctx, service, os.Args[1:], os.Stderr, func(ctx context.Context, args []string, stderr io.Writer) int {
		return runner.Main(ctx, version, args, os.Environ(), stderr)
	})
	stop()
	os.Exit(code)
}
