//go:build !unix

package testdocker

import "syscall"

// ownProcessGroup is a no-op where there are no Unix process groups; the
// package only compiles there (dockerd tests run on Linux), so that the
// packages whose tests use it vet for every GOOS.
func ownProcessGroup() *syscall.SysProcAttr { return nil }
