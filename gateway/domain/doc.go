// Package domain guards one HTTP domain of the public listener: the
// per-domain client policy that runs in front of the tunnel to a runner's
// web app. Policy is the configuration (YAML/JSON, snake_case keys);
// Policy.Handler or NewLive turn it into an http.Handler middleware.
//
// A request passes the checks in this order; the first that fails ends it:
//
//  1. Client address. The direct peer (RemoteAddr) is the client unless it
//     lies inside trusted_forwarders; then the right-most address of
//     X-Forwarded-For that is not itself a trusted forwarder is. An entry a
//     trusted forwarder wrote but that does not parse leaves the client
//     unknown, which no allow_cidrs list admits. IPv4-mapped IPv6
//     addresses count as IPv4 everywhere.
//  2. allow_cidrs (empty: every address) → 403.
//  3. time_ranges in UTC (empty: always) → 403. A range is checked when
//     the request starts; a stream opened inside a range is not cut when
//     the range ends.
//  4. credentials: HTTP Basic against bcrypt or sha512-crypt hashes → 401
//     with a Basic challenge naming realm. User names are compared in
//     constant time, an unknown user still costs one hash, and a verified
//     Authorization header is removed before next sees it.
//  5. Content-Length above max_body_bytes → 413 before next runs.
//  6. max_concurrent requests in flight (after the access checks, so
//     strangers cannot use up the slots) → 429 with Retry-After.
//  7. next runs. A body without a length that grows past max_body_bytes
//     is cut; if next has not answered yet, its answer becomes 413.
//
// Stealth turns the access refusals (steps 1–4) into NotFound, the answer
// the router should give unknown domains too, so that a scan learns
// nothing from the response; the log keeps the real reason. In stealth mode a missing or wrong credential
// is a 404 too, with no challenge: browsers never prompt, so only clients
// that send credentials unasked (curl -u, scripts) get in. A challenge
// whenever the request carries some Authorization header would tell anyone
// who sends "Authorization: Basic x" that the domain exists, which is what
// stealth is for. 413 and 429 are not disguised: only a client that passed
// every access check can see them, and it can see the app anyway.
//
// Every request gets an X-Transaction-Id, on the request that reaches next
// and on the response. A well-formed incoming id is kept only from a
// trusted forwarder; otherwise a random one replaces it. X-Forwarded-For,
// Forwarded and X-Real-Ip from an untrusted peer are removed before next
// sees the request; ClientIP, TransactionID and User read the results from
// the request context.
//
// Live holds the compiled policy behind an atomic pointer: Store changes it
// for requests that start afterwards while requests in flight finish under
// the policy they started with. The in-flight count belongs to the Live,
// not to a policy version, so a reload keeps counting the requests already
// running: lowering max_concurrent below the current count refuses new
// requests until enough finish, raising it admits more at once.
//
// read_timeout, write_timeout and idle_timeout are only validated and
// carried here (Policy.Timeouts, Live.Timeouts); the server applies them.
package domain
