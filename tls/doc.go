// Package leashtls is Leash's shared TLS policy, used by the gateway, the
// runner and the CLI alike (import it as leashtls).
//
// It owns three things:
//
//   - Identity: every client certificate names exactly one peer in a URI SAN
//     of the form leash://<role>/<name> (runner, operator, prometheus,
//     ui-proxy). IdentityFromCert and PeerIdentity read it back.
//   - Modes: ServerConfig builds the listener config for plain, HTTPS and
//     mTLS. In mTLS the client must present a certificate chaining to the
//     Leash root with the clientAuth EKU, and revocation is checked on every
//     handshake, resumed sessions included.
//   - Live certificates: Source holds the current key pair behind an atomic
//     pointer so GetCertificate / GetClientCertificate always serve the newest
//     one; FileSource reloads a pair replaced on disk without a restart.
package leashtls
