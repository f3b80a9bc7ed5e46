// Package gateway is the central side of Leash: it serves the runner and
// operator API (protocol package) on one listener in plain, HTTPS or mTLS
// mode, token enrollment on a second HTTPS listener that serves nothing
// else, and Prometheus metrics.
//
// Identity comes only from the verified client certificate in mTLS mode
// (leashtls.PeerIdentity); every route names the roles allowed to call it.
// The gateway tracks live TLS connections by certificate serial so that a
// revocation, made here, by another replica or by the CLI, closes the
// revoked peer's connections within a second, and a connection whose
// certificate expires is closed when it does.
//
// Jobs are long-polled: a runner's GET /v1/jobs/next claims a job at once
// or waits, woken by the store's job signals (LISTEN/NOTIFY on PostgreSQL)
// or by a one-second re-check that also catches expired leases.
//
// Server.Run owns every goroutine: the listeners, the offline detector,
// the revocation watcher, event retention, server certificate renewal and
// the job-signal fan-out; when its context ends it shuts the listeners
// down gracefully and releases long-polls.
package gateway
