package sqlitestore

import "errors"

// Sentinel errors. Match them with errors.Is; the wrapping message names the
// file and says how to fix it.
var (
	// ErrPermissions means the database file can be read or written by
	// group or others.
	ErrPermissions = errors.New("database file permissions too open")
	// ErrSchemaTooNew means the database was migrated by a newer version of
	// Leash than this one.
	ErrSchemaTooNew = errors.New("database schema is newer than this version of leash")
)
