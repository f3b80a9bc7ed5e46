package protocol

import (
	"encoding/json"
	"time"
)

// Health is the body of RouteHealth and RouteReady.
type Health struct {
	Status    string `json:"status"` // "ok" or "unavailable"
	GatewayID string `json:"gateway_id"`
	Version   string `json:"version"`
	// Problems lists why the gateway is not ready; empty when ready.
	Problems []string `json:"problems,omitempty"`
}

// EnrollRequest spends a one-time token on a certificate signing request.
type EnrollRequest struct {
	Token string `json:"token"`
	CSR   string `json:"csr"` // PEM "CERTIFICATE REQUEST"
}

// RenewRequest asks for a new certificate for the identity of the calling
// client certificate, for the key in CSR.
type RenewRequest struct {
	CSR string `json:"csr"` // PEM "CERTIFICATE REQUEST" for the new key
}

// CertificateResponse carries an issued certificate.
type CertificateResponse struct {
	Certificate string    `json:"certificate"` // PEM leaf followed by the intermediate
	CA          string    `json:"ca"`          // PEM root
	Serial      string    `json:"serial"`      // decimal
	NotAfter    time.Time `json:"not_after"`
}

// StepSignRequest and StepSignResponse are step-ca's /1.0/sign bodies.
type StepSignRequest struct {
	CSR string `json:"csr"`
	OTT string `json:"ott"`
}

// StepSignResponse is step-ca's answer to /1.0/sign.
type StepSignResponse struct {
	Crt       string   `json:"crt"`
	CA        string   `json:"ca"`
	CertChain []string `json:"certChain"`
}

// StepRoot is step-ca's answer to /root/{sha}.
type StepRoot struct {
	CA string `json:"ca"`
}

// RegisterRequest is what a runner tells the gateway about itself. The
// runner id is not in it: it comes from the client certificate.
type RegisterRequest struct {
	Hostname     string            `json:"hostname"`
	OS           string            `json:"os"`
	Arch         string            `json:"arch"`
	Version      string            `json:"version"`
	Labels       map[string]string `json:"labels,omitempty"`
	Capabilities []string          `json:"capabilities,omitempty"` // job kinds it handles, e.g. info, exec:uptime, rotate
}

// RegisterResponse tells the runner how the gateway wants to hear from it.
type RegisterResponse struct {
	RunnerID          string   `json:"runner_id"`
	GatewayID         string   `json:"gateway_id"`
	HeartbeatInterval Duration `json:"heartbeat_interval"`
	OfflineAfter      Duration `json:"offline_after"`
}

// Heartbeat carries a runner's vital signs.
type Heartbeat struct {
	Load1         float64   `json:"load1"`
	MemUsedBytes  uint64    `json:"mem_used_bytes"`
	MemTotalBytes uint64    `json:"mem_total_bytes"`
	CertNotAfter  time.Time `json:"cert_not_after"`
}

// Event kinds.
const (
	EventLog        = "log"        // Message at Level
	EventJobOutput  = "job.output" // Data from a job's Stream
	EventJobState   = "job.state"  // Message: started, finished, failed
	EventRotation   = "rotation"   // Message: renewed / retrying / failed
	EventConnection = "connection" // Message: connected / reconnecting
)

// Event is one line of the event stream.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Level   string    `json:"level,omitempty"` // debug, info, warn, error
	JobID   string    `json:"job_id,omitempty"`
	Stream  string    `json:"stream,omitempty"` // stdout, stderr
	Message string    `json:"message,omitempty"`
	Data    string    `json:"data,omitempty"`
}

// EventsAccepted answers an event upload.
type EventsAccepted struct {
	Accepted int `json:"accepted"`
}

// Job kinds a runner can handle.
const (
	JobInfo   = "info"   // host facts
	JobExec   = "exec"   // a command the runner's own config declares by name
	JobRotate = "rotate" // renew the runner certificate now
)

// Job states.
const (
	JobQueued    = "queued"
	JobRunning   = "running" // claimed, lease not expired
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

// JobSubmit asks for a job on one runner.
type JobSubmit struct {
	Runner  string `json:"runner"`
	Kind    string `json:"kind"`
	Command string `json:"command,omitempty"` // exec: the declared command name
	// Timeout bounds the run on the runner; zero = runner default.
	Timeout Duration `json:"timeout,omitempty"`
}

// Job is a job as the gateway reports it.
type Job struct {
	ID          string     `json:"id"`
	Runner      string     `json:"runner"`
	Kind        string     `json:"kind"`
	Command     string     `json:"command,omitempty"`
	Timeout     Duration   `json:"timeout,omitempty"`
	State       string     `json:"state"`
	Attempts    int        `json:"attempts"`
	SubmittedBy string     `json:"submitted_by,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ClaimedAt   time.Time  `json:"claimed_at,omitzero"`
	LeaseUntil  time.Time  `json:"lease_until,omitzero"`
	FinishedAt  time.Time  `json:"finished_at,omitzero"`
	Result      *JobResult `json:"result,omitempty"`
}

// JobResult is a job's outcome, reported once by the runner.
type JobResult struct {
	OK       bool   `json:"ok"`
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	Output   string `json:"output,omitempty"` // bounded by MaxJobOutputBytes; full output went out as events
	// Data is kind-specific JSON, e.g. HostInfo for info jobs.
	Data json.RawMessage `json:"data,omitempty"`
}

// HostInfo is the Data of an info job.
type HostInfo struct {
	Hostname string   `json:"hostname"`
	OS       string   `json:"os"`
	Arch     string   `json:"arch"`
	CPUs     int      `json:"cpus"`
	Version  string   `json:"version"`
	Uptime   Duration `json:"uptime"`
	Commands []string `json:"commands"` // declared exec commands
}

// Runner statuses.
const (
	RunnerOnline  = "online"
	RunnerOffline = "offline"
	RunnerRevoked = "revoked"
)

// Runner is a registered runner as operators see it.
type Runner struct {
	ID            string            `json:"id"`
	Status        string            `json:"status"`
	Hostname      string            `json:"hostname"`
	OS            string            `json:"os"`
	Arch          string            `json:"arch"`
	Version       string            `json:"version"`
	Labels        map[string]string `json:"labels,omitempty"`
	Capabilities  []string          `json:"capabilities,omitempty"`
	CertSerial    string            `json:"cert_serial"`
	CertNotAfter  time.Time         `json:"cert_not_after,omitzero"`
	FirstSeen     time.Time         `json:"first_seen"`
	LastSeen      time.Time         `json:"last_seen"`
	Load1         float64           `json:"load1"`
	MemUsedBytes  uint64            `json:"mem_used_bytes"`
	MemTotalBytes uint64            `json:"mem_total_bytes"`
}

// RevokeRequest revokes a runner's current certificate.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"` // RFC 5280 reason name; default unspecified
	Text   string `json:"text,omitempty"`
}

// RevokeResponse reports what was revoked.
type RevokeResponse struct {
	Runner  string   `json:"runner"`
	Serials []string `json:"serials"`
	// ClosedConnections counts the live connections of those serials that
	// this replica closed because they are revoked.
	ClosedConnections int `json:"closed_connections"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"error"`
}

// Error codes.
const (
	CodeBadRequest       = "bad_request"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeTooLarge         = "too_large"
	CodeUnauthenticated  = "unauthenticated"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"
	CodeTokenRefused     = "token_refused"
	CodePolicy           = "policy"
	CodeUnknownRunner    = "unknown_runner" // heartbeat/events before register
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// RunnerList is the body of RouteRunners.
type RunnerList struct {
	Runners []Runner `json:"runners"`
}

// JobList is the body of RouteJobs.
type JobList struct {
	Jobs []Job `json:"jobs"`
}
