// Package ca is Leash's embedded certificate authority.
//
// It wraps smallstep's authority (authority.NewEmbedded) behind a narrow API
// of our own so that callers never touch step types:
//
//   - Init creates a root and an intermediate on disk (the root key may then
//     be moved offline; only the intermediate signs day to day) and a token
//     signing key. Keys are written 0600 and encrypted with the CA password
//     unless the operator explicitly chose --insecure-no-password.
//   - Open loads a CA directory and a Store and starts the authority.
//   - CreateToken mints a one-time enrollment token bound to a profile and a
//     subject (a runner id, a client name). Enroll spends it on a CSR: the
//     key never leaves the requesting host.
//   - Issue signs directly for operators driving the CLI; Renew and Rekey
//     extend a certificate this CA issued; Revoke records a revocation and
//     regenerates the CRL; Certificates and Tokens are the inventory.
//
// Every issuance goes through a step JWK provisioner per profile (server,
// runner, operator, prometheus, ui-proxy) whose X.509 template fixes the
// subject, SANs, key usage and EKU: a CSR can never widen its profile.
//
// The Store (see store.go) is the single source of truth. The step authority
// reaches it through the adapter in authdb.go, so tokens are spent, and
// certificates and revocations recorded, in one place. Token spending is
// atomic in the store: of concurrent requests with one token exactly one
// wins, in one process or across gateway replicas.
//
// Before step sees a token, Leash verifies it itself (algorithm, key id,
// signature, audience, root pin, expiry, store state). Step's own check spends
// a token before verifying its signature; verifying first means a forged
// token carrying a real token id cannot burn it, and every refusal has a
// clear reason.
//
// Revocation is passive in step (it only blocks renewal); the TLS layer
// (package leashtls) asks IsRevoked on every handshake. The CRL is built
// here with crypto/x509 and stored in the Store, regenerated on every
// revocation and whenever the stored one is stale.
package ca
