package store

import "github.com/leashpki/leash/ca"

// Store is a storage backend for the gateway. It is safe for concurrent use,
// including by several processes sharing one database.
//
// Later issues add runner registrations, jobs and the audit log here, each
// as its own embedded interface with its own conformance tests in storetest.
type Store interface {
	ca.Store
	// Close releases the backend's connections; the store must not be
	// used afterwards.
	Close() error
}
