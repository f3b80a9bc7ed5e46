package domain

import "errors"

// ErrPolicy wraps every problem Policy.Validate finds.
var ErrPolicy = errors.New("invalid domain policy")

// ErrHash means a password hash is not one this package can verify.
var ErrHash = errors.New("unsupported or malformed password hash")
