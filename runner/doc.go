// Package runner is the remote side of Leash: an Agent that dials out to the
// gateway and never listens. On first start it generates its key, pins the
// CA by the fingerprint in its one-time token, enrolls and keeps key and
// certificate in its state directory (0600); on restart it reuses them.
//
// One http.Client with one Transport carries everything: register,
// heartbeats, the event stream and the job long-poll. Its client
// certificate comes from a leashtls.Source, so rotation (at about two
// thirds of the lifetime, with jitter) swaps the certificate under live
// traffic: requests in flight finish on their connections, new ones
// handshake with the new certificate after idle connections are closed.
//
// Errors are sorted by class: a gateway that cannot be reached is retried
// with capped, jittered backoff while the current certificate stays in
// use; a refusal that cannot get better (revoked, expired, token spent) is
// fatal and says what to do.
//
// The package never imports the gateway or the CA: it speaks only the
// protocol package's wire types.
package runner
