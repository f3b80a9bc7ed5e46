package runner

import "errors"

var (
	// ErrConfig wraps every problem Config.Validate finds.
	ErrConfig = errors.New("invalid runner configuration")
	// ErrNeedToken means the runner has no usable identity and no token to
	// enroll with.
	ErrNeedToken = errors.New("a new enrollment token is needed")
	// ErrFatal marks errors that retrying cannot fix.
	ErrFatal = errors.New("fatal")
)
