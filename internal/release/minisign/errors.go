package minisign

import "errors"

var (
	// ErrMalformed means a key or signature file is not in minisign format.
	ErrMalformed = errors.New("malformed minisign file")
	// ErrKeyID means a signature names another key than the one given.
	ErrKeyID = errors.New("signature is from another key")
	// ErrSignature means a signature does not verify.
	ErrSignature = errors.New("bad signature")
	// ErrEncryptedKey means a secret key is password-protected, which
	// this package does not read.
	ErrEncryptedKey = errors.New("encrypted minisign secret keys are not supported")
)
