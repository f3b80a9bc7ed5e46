package ca

import "errors"

// Sentinel errors. Callers match them with errors.Is; messages wrapped around
// them say what happened and how to fix it.
var (
	// ErrNotInitialized means the CA directory holds no initialised CA.
	ErrNotInitialized = errors.New("CA not initialised")
	// ErrAlreadyInitialized means ca init would overwrite an existing CA.
	ErrAlreadyInitialized = errors.New("CA already initialised")
	// ErrKeyPermissions means a private key file is readable by group or others.
	ErrKeyPermissions = errors.New("private key file permissions too open")
	// ErrPassword means a key could not be decrypted with the given password,
	// or a password is required and none was given.
	ErrPassword = errors.New("wrong or missing CA password")

	// ErrNotFound means the store holds no such record.
	ErrNotFound = errors.New("not found")
	// ErrExists means a record with that key already exists.
	ErrExists = errors.New("already exists")
	// ErrAlreadyRevoked means the certificate is already revoked.
	ErrAlreadyRevoked = errors.New("certificate already revoked")

	// ErrTokenInvalid means a token is malformed, forged, for another CA
	// or audience, or outside its validity window.
	ErrTokenInvalid = errors.New("token invalid")
	// ErrTokenExpired means the token's validity window has passed.
	ErrTokenExpired = errors.New("token expired")
	// ErrTokenUsed means the one-time token was already spent.
	ErrTokenUsed = errors.New("token already used")
	// ErrTokenRevoked means the token was revoked before use.
	ErrTokenRevoked = errors.New("token revoked")

	// ErrPolicy means a request asks for more than its profile allows
	// (extra SANs, CA flag, a lifetime over the limit, a weak key).
	ErrPolicy = errors.New("request refused by profile policy")
	// ErrUnknownProfile names a profile that does not exist.
	ErrUnknownProfile = errors.New("unknown profile")
	// ErrRenewal means a certificate cannot be renewed (revoked, expired,
	// or not issued by this CA).
	ErrRenewal = errors.New("certificate cannot be renewed")
)
