package protocol

import "time"

// Operator sessions (on-demand access to ports on a runner's own host).
// An operator asks for a session on a runner with a list of ports; the
// gateway checks them against the runner's allowed ports (what the runner
// declares, narrowed by an operator override) and answers with a session
// and a short-lived token bound to the runner, the session, the ports and
// an expiry. There is one live session per runner: a second operator joins
// it. Each connection then upgrades RouteSessionPort with the token; the
// runner dials 127.0.0.1:<port> only if its own config allows that port. A
// session ends when asked to, when no bytes moved for its idle timeout, or
// when its token expires; the ends are audited with their reason.
const (
	RouteSessionConnect    = "POST /v1/tunnel/connect"                   // operator; SessionRequest → Session
	RouteSessionStatus     = "GET /v1/tunnel/status"                     // operator; ?runner=
	RouteSessionDisconnect = "DELETE /v1/tunnel/disconnect"              // operator; ?runner=[&leave=true]
	RouteSessionPort       = "GET /v1/tunnel/sessions/{id}/ports/{port}" // operator; Upgrade: StreamProtocol
	RouteSessionPorts      = "PUT /v1/runners/{id}/session-ports"        // operator; SessionPorts: override
	HeaderSessionToken     = "Leash-Session-Token"
	StreamPort             = "port" // stream kind: a port on the runner's own host
	DefaultSessionIdle     = 15 * time.Minute
	MaxSessionLifetime     = 12 * time.Hour
)

// SessionRequest opens (or joins) the session on Runner.
type SessionRequest struct {
	Runner      string   `json:"runner"`
	Ports       []int    `json:"ports"`
	IdleTimeout Duration `json:"idle_timeout,omitempty"` // default 15m, at least 1s
}

// Session is a live operator session.
type Session struct {
	ID          string    `json:"id"`
	Runner      string    `json:"runner"`
	Ports       []int     `json:"ports"`
	Token       string    `json:"token,omitempty"` // only in the answer to the operator who asked
	ExpiresAt   time.Time `json:"expires_at"`
	IdleTimeout Duration  `json:"idle_timeout"`
	LastActive  time.Time `json:"last_active"`
	Operators   []string  `json:"operators"`
	Streams     int       `json:"streams"`
}

// SessionStatus answers RouteSessionStatus.
type SessionStatus struct {
	Up      bool     `json:"up"`
	Session *Session `json:"session,omitempty"`
	// AllowedPorts are the ports a session on this runner may use.
	AllowedPorts []int `json:"allowed_ports"`
}

// SessionPorts overrides (narrows) the ports sessions may use on a runner;
// an empty list removes the override.
type SessionPorts struct {
	Ports []int `json:"ports"`
}

// DefaultSessionPorts are the ports a runner allows for sessions unless
// its config says otherwise, by operating system.
func DefaultSessionPorts(goos string) []int {
	switch goos {
	case "windows":
		return []int{3389, 5985, 5986, 5900}
	default:
		return []int{22, 5900}
	}
}
