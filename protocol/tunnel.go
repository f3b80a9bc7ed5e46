package protocol

import (
	"encoding/json"
	"time"
)

// The tunnel. After registering, a runner that declares services opens
// one long-lived connection to RouteTunnel with an HTTP Upgrade to
// TunnelProtocol over its usual client transport (so it crosses HTTPS
// proxies, and its mTLS identity is the connection's). Both ends then run
// a yamux session on it: the runner is the yamux client, the gateway the
// server, and the gateway opens one stream per proxied connection.
//
// Every stream starts with one JSON line from the gateway, a StreamRequest
// naming a service the runner DECLARED by name; the runner answers with
// one JSON line, a StreamReply, and then the stream carries raw bytes in
// both directions, half-close included. The gateway may send bytes after
// its request line before the reply; the runner reads them only once it
// has accepted the stream. The runner maps names to
// addresses from its own configuration, so a gateway can never make it
// reach anything else.
const (
	RouteTunnel    = "GET /v1/tunnel"                               // runner; Upgrade: TunnelProtocol
	RouteConnect   = "GET /v1/runners/{id}/services/{name}/connect" // operator; Upgrade: StreamProtocol
	TunnelProtocol = "leash-tunnel/1"
	StreamProtocol = "leash-stream/1"
)

// Tunnel timing. Keepalives every 15 s keep a load balancer's 60 s idle
// timeout from cutting the tunnel, and a peer that stops answering is
// detected within two intervals.
const (
	TunnelKeepAlive     = 15 * time.Second
	StreamHeaderTimeout = 10 * time.Second // the request/reply lines of a stream
	MaxStreamHeader     = 4 << 10
)

// Stream kinds.
const (
	StreamTCP  = "tcp"  // a declared TCP service
	StreamHTTP = "http" // a declared HTTP domain: the stream carries HTTP/1.1
	// StreamDocker carries HTTP/1.1 to the runner's filtered Docker API.
	StreamDocker = "docker"
)

// StreamRequest opens a stream.
type StreamRequest struct {
	Kind    string `json:"kind"`
	Service string `json:"service"`           // the declared name, never an address
	Client  string `json:"client,omitempty"`  // who asked, for the runner's log
	Session string `json:"session,omitempty"` // operator session, when there is one
}

// StreamReply answers a StreamRequest. After OK the stream is raw bytes;
// otherwise the runner closes it.
type StreamReply struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Service is a TCP service a runner declares, as operators see it.
type Service struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
}

// HTTP domains: the gateway's public listeners route a request by its Host
// to the one runner that serves the domain, through the runner's tunnel
// (StreamHTTP), behind the domain's client policy.
const (
	RouteDomains      = "GET /v1/domains"           // operator
	RouteDomain       = "GET /v1/domains/{name}"    // operator
	RouteDomainPut    = "PUT /v1/domains/{name}"    // operator; Domain → Domain
	RouteDomainDelete = "DELETE /v1/domains/{name}" // operator
)

// Domain is an HTTP domain as operators manage it. Policy is the client
// policy (see gateway/domain.Policy: allow_cidrs, time_ranges, credentials,
// trusted_forwarders, max_concurrent, max_body_bytes, timeouts, stealth).
type Domain struct {
	Name   string          `json:"name"`
	Runner string          `json:"runner"`
	Policy json.RawMessage `json:"policy,omitempty"`
	// Source is "file:<path>" for a domain managed by a file of the
	// gateway's domains directory (the API refuses to change it), empty
	// for one made through the API.
	Source string `json:"source,omitempty"`
}

// DomainList is the body of RouteDomains.
type DomainList struct {
	Domains []Domain `json:"domains"`
}

// Docker: the runner's filtered Docker Engine API, for the docker CLI
// (through 'leash docker', which adds the prefix and the operator
// certificate), and the containers it runs.
const (
	RouteDocker     = "/v1/runners/{id}/docker/{path...}" // operator; any method the runner's filter allows
	RouteContainers = "GET /v1/runners/{id}/containers"   // operator; ContainerList
)

// Container is one container a runner's Docker Engine runs.
type Container struct {
	ID     string            `json:"id"`
	Names  []string          `json:"names"`
	Image  string            `json:"image"`
	State  string            `json:"state"`
	Status string            `json:"status"`
	Labels map[string]string `json:"labels,omitempty"`
}

// ContainerList is the body of RouteContainers.
type ContainerList struct {
	Runner     string      `json:"runner"`
	Containers []Container `json:"containers"`
}
