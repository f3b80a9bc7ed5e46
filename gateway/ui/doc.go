// Package ui is the gateway's operator browser UI, made to sit behind a
// reverse proxy that authenticates people (oauth2-proxy, nginx with SSO).
//
// Who may use it: only a client presenting a verified certificate with
// the ui-proxy role (leash://ui-proxy/<name>); anything else is answered
// 403, since operators use the CLI and the API. The person is named by the
// proxy in X-Forwarded-User (or, failing that, X-Forwarded-Email), which is
// trusted only on such a connection; a ui-proxy request without either is
// answered 401, because the proxy has not authenticated anyone. State
// changes are audited as "ui:<user> via <proxy identity>".
//
// Where it is: the gateway mounts it under /ui/ on its API listener; links
// are built from a path prefix, X-Forwarded-Prefix when the TCP peer is
// inside the trusted proxy CIDRs and the value is a clean absolute path,
// otherwise the configured prefix (default /ui). A prefix that is not a
// single-slash absolute path ("//evil", "/\evil", "https://evil", "..",
// control characters) is logged and ignored, so it never reaches a link
// or a Location header. X-Forwarded-Proto and -Host, from a trusted peer
// only, name the origin the browser sees, for the Origin check.
//
// Requests: GET never changes anything. Every state change is a POST form
// carrying a CSRF token (an HMAC of the user and proxy identity under a
// key the gateway replicas share) and must come with an Origin equal to
// the UI's own origin or Sec-Fetch-Site: same-origin; otherwise 403 and
// nothing changes. Every answer carries a CSP without inline script,
// frame-ancestors 'none', X-Frame-Options DENY, nosniff and Referrer-Policy same-origin (no-referrer would make
// browsers send "Origin: null" with forms).
//
// Pages are server-rendered html/template with embedded CSS and one small
// script (no build step, no CDN); live data comes over Server-Sent Events
// (GET events), which the script applies to the tables, refreshing the
// page periodically when EventSource is unavailable. The pages work
// without script, from the keyboard and with a screen reader.
//
// The package does not import the gateway: it talks to it through
// Backend, which the gateway implements over its store and CA.
package ui
