package gateway

import "errors"

// ErrConfig wraps every problem Config.Validate finds.
var ErrConfig = errors.New("invalid gateway configuration")
