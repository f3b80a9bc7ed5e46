//go:build unix

package testdocker

import "syscall"

// ownProcessGroup puts dockerd in its own process group, so that a ^C at
// the terminal reaches the test binary (which then stops the engine through
// Run) rather than dockerd directly.
func ownProcessGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
