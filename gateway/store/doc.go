// Package store is the gateway's persistence boundary. It names what a
// storage backend must provide; the backends themselves live in
// subpackages (sqlitestore for a single file, later PostgreSQL for several
// gateway replicas), and every backend must pass the shared conformance
// suite in storetest.
//
// The interface grows one concern at a time: today it is exactly what the
// certificate authority needs (ca.Store) plus Close.
package store
