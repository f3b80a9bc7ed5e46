package protocol

import "time"

// API version prefix; every route below starts with it except the
// step-compatible enrollment paths.
const Version = "v1"

// Routes served on the API listener (mTLS in production). Path parameters
// use Go 1.22 http.ServeMux patterns.
const (
	RouteHealth    = "GET /v1/health"    // liveness; any authenticated peer
	RouteReady     = "GET /v1/ready"     // readiness: store reachable, CA loaded
	RouteRegister  = "POST /v1/register" // runner
	RouteHeartbeat = "POST /v1/heartbeat"
	RouteEvents    = "POST /v1/events"   // runner; application/x-ndjson stream of Event
	RouteJobNext   = "GET /v1/jobs/next" // runner; ?wait=<duration> up to MaxJobWait
	RouteJobResult = "POST /v1/jobs/{id}/result"
	RouteRenew     = "POST /v1/renew" // runner or operator; RenewRequest → CertificateResponse

	RouteRunners      = "GET /v1/runners" // operator
	RouteRunner       = "GET /v1/runners/{id}"
	RouteRunnerRevoke = "POST /v1/runners/{id}/revoke"
	RouteJobSubmit    = "POST /v1/jobs"
	RouteJobs         = "GET /v1/jobs" // ?runner=<id>&state=<state>&limit=<n>
	RouteJob          = "GET /v1/jobs/{id}"

	RouteMetrics = "GET /metrics" // prometheus role
)

// Routes served on the enrollment listener, which serves nothing else.
const (
	RouteEnrollRoot = "GET /v1/enroll/root/{sha}" // PEM root whose SHA-256 is sha
	RouteEnroll     = "POST /v1/enroll"           // EnrollRequest → CertificateResponse
	RouteEnrollCRL  = "GET /v1/enroll/crl"        // DER CRL of the issuing CA (application/pkix-crl)
	RouteStepRoot   = "GET /root/{sha}"           // step-compatible: {"ca": PEM}
	RouteStepSign   = "POST /1.0/sign"            // step-compatible: {csr, ott} → {crt, ca, certChain}
)

// Limits both sides respect. The gateway refuses what exceeds them with a
// 4xx and stores nothing.
const (
	MaxBodyBytes      = 64 << 10 // any JSON request body
	MaxEventLineBytes = 16 << 10 // one ndjson event line
	MaxEventDataBytes = 8 << 10  // Event.Data
	MaxJobOutputBytes = 64 << 10 // JobResult.Output
	MaxLabels         = 32
	MaxLabelBytes     = 256
	MaxJobWait        = 30 * time.Second
	DefaultJobWait    = 30 * time.Second
)

// Media types.
const (
	ContentTypeJSON   = "application/json"
	ContentTypeNDJSON = "application/x-ndjson"
)

// Header names.
const (
	// HeaderGatewayID names the gateway replica that answered.
	HeaderGatewayID = "Leash-Gateway-Id"
	// HeaderRunnerID names the runner in plain and HTTPS modes, where no
	// client certificate proves it. It is ignored in mTLS mode: there the
	// identity comes only from the verified certificate.
	HeaderRunnerID = "Leash-Runner-Id"
)

// Default ports. A runner whose LEASH_ENROLL_URL is unset enrolls at the
// gateway URL's host on DefaultEnrollPort.
const (
	DefaultAPIPort    = 8443
	DefaultEnrollPort = 8444
)
