package dockerproxy

import "errors"

var (
	// ErrConfig wraps every problem New finds in a Config.
	ErrConfig = errors.New("invalid docker proxy configuration")
	// ErrUnsafeWrite marks an AllowedWrites entry that is not one of the
	// container lifecycle writes the proxy may allow.
	ErrUnsafeWrite = errors.New("not a write the docker proxy may allow")
	// ErrEngine means the Docker Engine answered with an error status.
	ErrEngine = errors.New("docker engine error")
)
