// Package deploy holds Leash's deployment kit — container images
// (docker/), Docker Compose (compose/), systemd units (systemd/),
// Kubernetes manifests (k8s/), Prometheus scrape config and alerts
// (prometheus/) and an nginx + oauth2-proxy front for the UI (nginx/) —
// and the tests that keep it working. It has no non-test code.
//
// The tests build both images FROM scratch around host-built static
// binaries, run a gateway container and enroll a runner container against
// it on a throwaway dockerd (internal/testdocker), and check every config
// file with the real tool where one exists (promtool, systemd-analyze,
// nginx, docker compose) and structurally with a YAML parser otherwise.
// See README.md in this directory.
package deploy
