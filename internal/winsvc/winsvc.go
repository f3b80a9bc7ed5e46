// Package winsvc lets a command run as a Windows service. On Windows,
// Main runs the command under the Service Control Manager when the SCM
// started the process, with a context cancelled on Stop or Shutdown, and
// handles `<command> service install [flags...]` and `service uninstall`.
// Everywhere else Main just runs the command.
package winsvc

import (
	"context"
	"io"
)

// RunFunc is the command: it runs until ctx ends and returns an exit code.
// Under the SCM, stderr is a log file (there is no console).
type RunFunc func(ctx context.Context, args []string, stderr io.Writer) int

// Service describes the service the command installs as.
type Service struct {
	Name        string // e.g. leash-runner
	DisplayName string
	Description string
}
