// Command leash is the Leash CLI: CA, certificates, tokens and (later) the
// gateway. All behaviour lives in package cli; main only wires the process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/leashpki/leash/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.Env{Stdout: os.Stdout, Stderr: os.Stderr}, os.Args)
	stop()
	os.Exit(code)
}
