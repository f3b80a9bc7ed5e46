// Package protocol is the wire contract between a Leash runner and the
// gateway: the routes, the JSON bodies and the limits both sides enforce.
// It holds no network code; the gateway serves these routes and the runner
// calls them, and neither imports the other.
//
// A runner's life, as seen on the wire:
//
//  1. Enrollment (enrollment listener: HTTPS, server auth only). The runner
//     holds a one-time token whose payload names the root fingerprint. It
//     fetches GET /v1/enroll/root/{sha256} (also served as /root/{sha256}
//     for step clients), checks that the returned certificate hashes to the
//     fingerprint, and from then on trusts only that root. It generates its
//     key locally and sends POST /v1/enroll {token, csr}; the gateway spends
//     the token and answers with the certificate chain. The key never
//     leaves the host. /1.0/sign accepts step's {csr, ott} body.
//
//  2. Registration (API listener: mTLS). Every request after enrollment
//     carries the runner certificate; the gateway takes the runner id from
//     the certificate's leash://runner/<id> URI SAN and from nothing else.
//     POST /v1/register records host facts and returns the heartbeat
//     interval and offline threshold the gateway wants.
//
//  3. Steady state, all over one HTTP client and transport:
//     POST /v1/heartbeat every HeartbeatInterval with load and memory;
//     POST /v1/events with a stream of newline-delimited JSON events
//     (Content-Type application/x-ndjson), one request per batch or one
//     long upload; GET /v1/jobs/next?wait=30s long-polls for the next job
//     addressed to this runner (204 when none arrived in time) and
//     POST /v1/jobs/{id}/result reports its outcome exactly once.
//
//  4. Rotation. At about two thirds of the certificate's lifetime the runner
//     sends POST /v1/renew {csr} over mTLS with its current certificate and
//     a CSR for a fresh key, swaps the answer in through
//     GetClientCertificate, and closes idle connections. The old
//     certificate stays valid until it expires.
//
// Operators (role operator) use the same API listener: list and show
// runners, revoke a runner, submit, list and get jobs. Prometheus (role
// prometheus) reads /metrics. Every error is an Error body with a stable
// machine-readable Code next to a sentence for people.
package protocol
