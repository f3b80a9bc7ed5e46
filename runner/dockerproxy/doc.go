// Package dockerproxy is the runner's read-only, filtered view of the
// local Docker Engine: an http.Handler that forwards the few requests its
// policy allows to the engine's unix socket and answers every other one
// itself, 403 with Docker's error shape ({"message": "..."}), without the
// engine ever seeing it.
//
// # Policy
//
// Read-only by default. GET and HEAD of these endpoints are forwarded:
//
//	/_ping /version /info /events
//	/containers/json /containers/{id}/json
//	/images/json
//	/networks /networks/{id}
//	/volumes /volumes/{name}
//	/containers/{id}/logs        only with Config.AllowLogs
//
// Writes are refused unless Config.AllowedWrites names them, and only
// container lifecycle writes may be named: POST /containers/{id}/ followed
// by restart, start, stop, kill, pause or unpause. New refuses any other
// entry, so a configuration cannot open exec, create, delete, build or
// the like by mistake. An allowed write may carry only its own query
// parameters (t and signal for restart and stop, signal for kill,
// detachKeys for start; start's checkpoint options are refused) and no
// body.
//
// Everything else is refused: attach, exec, archive and export, image
// save (/images/get, /images/{name}/get), secrets, swarm, plugins, build,
// commit, session, grpc, and any route not listed above.
//
// # Canonical form first, then the match
//
// The request target is put in one canonical form, matched against the
// allow list in that form, and forwarded in exactly that form, so the
// engine routes the path that was checked and nothing else:
//
//   - only origin-form targets (/path?query); absolute-form
//     (http://host/...), authority-form (CONNECT) and * are refused;
//   - the path is percent-decoded once, by net/http; a path that held an
//     encoded slash or backslash (%2F, %5C), or that still holds a % after
//     decoding (double encoding), or any byte outside printable ASCII, or
//     a backslash, is refused;
//   - dot segments are resolved, repeated slashes collapsed and a
//     trailing slash dropped (path.Clean);
//   - an API version prefix /v<major>.<minor> is kept, and matching looks
//     at what follows it; anything else that looks like a version is just
//     an unknown path;
//   - case is kept: Docker's routes are case-sensitive, so /Containers/json
//     is an unknown path and is refused, never lowercased and allowed;
//   - path parameters ({id}, {name}) must look like Docker names
//     ([A-Za-z0-9][A-Za-z0-9_.-]*);
//   - the query is parsed (a query that does not parse, as with a ;
//     separator, is refused) and re-encoded.
//
// The request itself must be plain: no method override header
// (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override, or a _method
// parameter), no Upgrade header and no Connection: upgrade (attach, exec,
// /session and /grpc hijack the connection), no body at all (no Docker
// read takes one, nor does an allowed write; so a request with both
// Content-Length and Transfer-Encoding, or with either, is refused), and
// only the exact upper-case methods GET, HEAD and, for allowed writes,
// POST.
//
// Each request is decided on its own, so a kept-alive connection carrying
// an allowed request, then a refused one, then an allowed one gets 200,
// 403, 200, and the engine sees two requests.
//
// # Forwarding
//
// An httputil.ReverseProxy forwards to the socket through an
// http.Transport that dials it; the request's Host becomes "docker", the
// hop-by-hop headers and X-Forwarded-* are dropped, and Accept-Encoding is
// dropped so that answers arrive uncompressed. Answers are flushed as they
// arrive, so /events and followed logs stream. An engine answer of
// 101 Switching Protocols is refused (502), since no allowed request asks
// for one.
//
// # Redaction
//
// GET /containers/{id}/json answers are decoded, rewritten and re-encoded:
// in every Env array (Config.Env and any other) each KEY=value becomes
// KEY=<redacted>, keeping the names so an operator can see which variables
// are set, and the values of HostConfig.LogConfig.Config (logging driver
// options, which hold tokens such as splunk-token) become <redacted>. The
// Options of volumes (/volumes, /volumes/{name}), which hold mount options
// such as CIFS passwords, are redacted the same way. No other allowed
// answer carries container configuration. An answer that cannot be
// rewritten (not JSON, compressed, over 16 MiB) is not passed on: the
// client gets a 502 instead.
//
// What stays visible: container commands and arguments, labels, mounts
// and image names in /containers/json and inspect, and the event stream,
// whose exec events name the command run. A secret passed on a command
// line is visible to anyone this proxy serves.
//
// Discover lists the engine's containers through the same socket, for the
// runner to report to the gateway.
//
// The package imports only the standard library: it is part of the
// runner and must not pull in the gateway, the CA or smallstep.
package dockerproxy
