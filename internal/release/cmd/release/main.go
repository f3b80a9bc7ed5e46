// Command release builds and signs a Leash release (see package release):
//
//	go run ./internal/release/cmd/release keygen -secret leash-release.key -public leash-release.pub
//	go run ./internal/release/cmd/release build -version v1.2.0 -out dist -key leash-release.key
//
// `make release` wraps the second; without KEY it makes a throwaway key.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/leashpki/leash/internal/release"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := release.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
