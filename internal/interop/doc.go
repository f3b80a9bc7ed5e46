// Package interop holds the interoperability tests: certificates minted by
// Leash's CA checked by openssl, and a tiny mTLS server built on leashtls
// driven by curl. The package has no non-test code beyond this comment.
package interop
