// Package e2edocker runs the Docker socket proxy end to end against a real
// Docker Engine: the docker CLI talks to 'leash docker', which goes through
// the gateway and the runner's tunnel to the runner's filter and on to
// dockerd. It has no non-test code; it is its own package because its
// tests need their own dockerd (testdocker.Run in TestMain).
package e2edocker
