// Package store is the gateway's persistence boundary. It names what a
// storage backend must provide; the backends live in subpackages
// (sqlitestore for a single file, pgstore for PostgreSQL shared by several
// gateway replicas), and every backend must pass the shared conformance
// suite in storetest.
//
// Store is the sum of small interfaces, one per concern: the CA's
// certificates, tokens and CRLs (ca.Store), runner registrations, jobs,
// events and the audit log. Every method is safe for concurrent use,
// including by several processes sharing one database, and every time
// goes in and comes out in UTC.
package store
