package dockerproxy

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
)

// route is one endpoint the proxy lets through.
type route struct {
	segs    []string      // path after the version prefix; "{id}" and "{name}" match one name segment
	write   bool          // POST; otherwise GET and HEAD
	logs    bool          // allowed only with Config.AllowLogs
	query   []string      // for writes, the only query parameters allowed
	rewrite func(doc any) // redacts a 200 JSON answer to GET
}

// readRoutes are the endpoints allowed to everyone, plus logs.
var readRoutes = []route{
	{segs: seg("/_ping")},
	{segs: seg("/version")},
	{segs: seg("/info")},
	{segs: seg("/events")},
	{segs: seg("/containers/json")},
	{segs: seg("/containers/{id}/json"), rewrite: redactContainer},
	{segs: seg("/containers/{id}/logs"), logs: true},
	{segs: seg("/images/json")},
	{segs: seg("/networks")},
	{segs: seg("/networks/{id}")},
	{segs: seg("/volumes"), rewrite: redactVolumeList},
	{segs: seg("/volumes/{name}"), rewrite: redactVolume},
}

func seg(p string) []string { return strings.Split(strings.TrimPrefix(p, "/"), "/") }

// routes returns the routes c lets through. c has been checked.
func (c Config) routes() []route {
	rs := slices.Clone(readRoutes)
	for _, w := range c.AllowedWrites {
		_, pattern, _ := strings.Cut(w, " ")
		rs = append(rs, route{segs: seg(pattern), write: true, query: safeWrites[w]})
	}
	return rs
}

// decision is what the policy made of an allowed request.
type decision struct {
	route *route
	path  string // canonical path to forward, version prefix included
	query string // re-encoded query
}

// refusal is why a request was refused; its text goes to the client.
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }

func refuse(format string, args ...any) *refusal { return &refusal{fmt.Sprintf(format, args...)} }

// overrideHeaders ask some servers to treat a request as another method.
var overrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

var (
	versionRE = regexp.MustCompile(`^v[0-9]{1,4}\.[0-9]{1,4}$`)
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)
)

// decide applies the policy to r: the decision to forward it, or why not.
func decide(routes []route, allowLogs bool, r *http.Request) (decision, *refusal) {
	if rf := checkFraming(r); rf != nil {
		return decision{}, rf
	}
	version, segs, rf := canonicalPath(r)
	if rf != nil {
		return decision{}, rf
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return decision{}, refuse("the query does not parse: %v", err)
	}
	if _, ok := q["_method"]; ok {
		return decision{}, refuse("a _method parameter asks for another method")
	}
	rt := match(routes, segs)
	if rt == nil {
		return decision{}, refuse("%s is not an endpoint the runner allows", "/"+strings.Join(segs, "/"))
	}
	switch {
	case rt.write && r.Method != http.MethodPost, !rt.write && r.Method != http.MethodGet && r.Method != http.MethodHead:
		return decision{}, refuse("method %s is not allowed on this endpoint", r.Method)
	case rt.logs && !allowLogs:
		return decision{}, refuse("container logs are not allowed on this runner (allow_logs is off)")
	}
	if rf := checkBody(r); rf != nil {
		return decision{}, rf
	}
	if rt.write {
		for k := range q {
			if !slices.Contains(rt.query, k) {
				return decision{}, refuse("query parameter %q is not allowed on this write", k)
			}
		}
	}
	p := "/" + strings.Join(segs, "/")
	if version != "" {
		p = "/" + version + p
	}
	return decision{route: rt, path: p, query: q.Encode()}, nil
}

// checkFraming refuses requests that are not plain: an odd target form, a
// protocol switch or a method override.
func checkFraming(r *http.Request) *refusal {
	// A request a server read names its target in RequestURI, and only
	// origin-form will do. A request built in-process (RequestURI empty)
	// is routed on its URL's path alone: it always goes to the socket.
	switch {
	case r.URL == nil || r.URL.Opaque != "":
		return refuse("only origin-form request targets (/path) are accepted")
	case r.RequestURI != "" && (!strings.HasPrefix(r.RequestURI, "/") || r.URL.Host != ""):
		return refuse("only origin-form request targets (/path) are accepted")
	case r.Header.Get("Upgrade") != "" || hasToken(r.Header["Connection"], "upgrade"):
		return refuse("protocol upgrades (attach, exec, session, grpc) are not allowed")
	}
	for _, h := range overrideHeaders {
		if _, ok := r.Header[h]; ok {
			return refuse("the %s header asks for another method", h)
		}
	}
	return nil
}

// checkBody refuses a request with a body. It runs after the route is
// known, so that a refused endpoint is refused as such.
func checkBody(r *http.Request) *refusal {
	switch {
	case r.Header.Get("Content-Length") != "" && len(r.TransferEncoding) > 0:
		return refuse("both Content-Length and Transfer-Encoding are set")
	case len(r.TransferEncoding) > 0 || r.Header.Get("Transfer-Encoding") != "":
		return refuse("no allowed request carries a body (Transfer-Encoding is set)")
	case r.ContentLength != 0:
		return refuse("no allowed request carries a body")
	}
	return nil
}

// hasToken reports whether a comma-separated header holds token.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(f), token) {
				return true
			}
		}
	}
	return false
}

// canonicalPath returns the API version prefix (or "") and the segments
// that follow it, from a path decoded once and cleaned.
func canonicalPath(r *http.Request) (version string, segs []string, rf *refusal) {
	// The target as sent, and the path as net/http (or a middleware such
	// as http.StripPrefix) left it: neither may hold an encoded slash.
	target, _, _ := strings.Cut(r.RequestURI, "?")
	for _, raw := range []string{target, r.URL.EscapedPath()} {
		lower := strings.ToLower(raw)
		if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
			return "", nil, refuse("encoded slashes and backslashes (%%2F, %%5C) are not allowed in the path")
		}
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") {
		return "", nil, refuse("the path does not start with /")
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%':
			return "", nil, refuse("the path is still percent-encoded after decoding once")
		case c <= ' ' || c >= 0x7f || c == '\\':
			return "", nil, refuse("the path holds a byte (%q) no Docker route has", c)
		}
	}
	p = path.Clean(p)
	if p == "/" {
		return "", nil, refuse("/ is not an endpoint the runner allows")
	}
	segs = strings.Split(p[1:], "/")
	if versionRE.MatchString(segs[0]) {
		version, segs = segs[0], segs[1:]
	}
	return version, segs, nil
}

// match returns the route segs names, or nil.
func match(routes []route, segs []string) *route {
	for i := range routes {
		if matchSegs(routes[i].segs, segs) {
			return &routes[i]
		}
	}
	return nil
}

func matchSegs(pattern, segs []string) bool {
	if len(pattern) != len(segs) {
		return false
	}
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") {
			if !nameRE.MatchString(segs[i]) {
				return false
			}
		} else if p != segs[i] {
			return false
		}
	}
	return true
}
