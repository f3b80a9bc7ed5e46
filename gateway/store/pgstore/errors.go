package pgstore

import "errors"

// Sentinel errors. Match them with errors.Is; the wrapping message names the
// database and says how to fix it.
var (
	// ErrSchemaTooNew means the database was migrated by a newer version of
	// Leash than this one.
	ErrSchemaTooNew = errors.New("database schema is newer than this version of leash")
	// ErrClosed means the store was used after Close.
	ErrClosed = errors.New("store closed")
)
