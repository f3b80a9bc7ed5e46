// Package e2e holds the end-to-end scenarios of the control plane: a real
// CA, real gateways and real runners in one process (see testharness),
// run once per store backend. It has no non-test code.
package e2e
