//go:build !windows

package winsvc

import (
	"context"
	"io"
)

// Main runs run: outside Windows there is no service manager to talk to.
func Main(ctx context.Context, _ Service, args []string, stderr io.Writer, run RunFunc) int {
	return run(ctx, args, stderr)
}
