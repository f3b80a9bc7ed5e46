package domain

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
)

// Reason names why a request was refused; it is the "reason" log field.
type Reason string

// Refusal reasons.
const (
	ReasonClientUnknown     Reason = "client_address_unknown"
	ReasonCIDR              Reason = "address_not_allowed"
	ReasonTime              Reason = "outside_time_ranges"
	ReasonAuthMissing       Reason = "credentials_missing"
	ReasonAuthMalformed     Reason = "credentials_malformed"
	ReasonAuthTooLong       Reason = "credentials_too_long"
	ReasonAuthUnknownUser   Reason = "unknown_user"
	ReasonAuthWrongPassword Reason = "wrong_password"
	ReasonConcurrency       Reason = "too_many_concurrent_requests"
	ReasonBodyTooLarge      Reason = "body_too_large"
)

// Log messages (docs/logging.md lists them).
const (
	LogRefused = "domain request refused"
	LogTxID    = "domain replaced incoming transaction id"
)

// RetryAfter is the Retry-After value of a 429, in seconds.
const RetryAfter = "1"

// Option configures NewLive and Policy.Handler.
type Option func(*options)

type options struct {
	log    *slog.Logger
	now    func() time.Time
	domain string
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock time ranges are checked against.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithDomain names the domain in logs and in the default realm.
func WithDomain(name string) Option { return func(o *options) { o.domain = name } }

// Live serves next behind a policy that Store can replace at any time.
type Live struct {
	next     http.Handler
	opts     options
	log      *slog.Logger
	cur      atomic.Pointer[compiled]
	inflight atomic.Int64 // shared by every policy version
}

// NewLive validates p and returns a Live serving next behind it.
func NewLive(p Policy, next http.Handler, opts ...Option) (*Live, error) {
	if next == nil {
		return nil, errors.New("domain: next handler is nil")
	}
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	l := &Live{next: next, opts: o, log: o.log.With("domain", o.domain)}
	if err := l.Store(p); err != nil {
		return nil, err
	}
	return l, nil
}

// Handler returns next behind p: a Live that is never reloaded.
func (p Policy) Handler(next http.Handler, opts ...Option) (http.Handler, error) {
	return NewLive(p, next, opts...)
}

// Store validates p and makes it the policy of every request that starts
// afterwards. Requests in flight keep the policy they started with and
// keep their concurrency slots. An invalid p changes nothing.
func (l *Live) Store(p Policy) error {
	c, err := compile(p, l.opts.domain)
	if err != nil {
		return err
	}
	l.cur.Store(c)
	return nil
}

// Policy returns the policy new requests see.
func (l *Live) Policy() Policy { return l.cur.Load().src }

// Timeouts returns the current policy's server timeouts.
func (l *Live) Timeouts() Timeouts { return l.Policy().Timeouts() }

// InFlight returns the number of requests holding a concurrency slot.
func (l *Live) InFlight() int64 { return l.inflight.Load() }

// acquire takes a slot unless limit (>0) are taken. Requests are counted
// even without a limit, so that a reload that sets one knows how many run.
func (l *Live) acquire(limit int) bool {
	for {
		n := l.inflight.Load()
		if limit > 0 && n >= int64(limit) {
			return false
		}
		if l.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

type ctxKey int

const (
	keyTxID ctxKey = iota
	keyClient
	keyUser
)

// TransactionID returns the request's X-Transaction-Id ("" outside Live).
func TransactionID(ctx context.Context) string { s, _ := ctx.Value(keyTxID).(string); return s }

// ClientIP returns the client address Live resolved; it is not valid when
// the peer's address was unknown.
func ClientIP(ctx context.Context) netip.Addr { a, _ := ctx.Value(keyClient).(netip.Addr); return a }

// User returns the user that authenticated ("" without credentials).
func User(ctx context.Context) string { s, _ := ctx.Value(keyUser).(string); return s }

// ServeHTTP applies the policy current when the request starts.
func (l *Live) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := l.cur.Load()
	peer, _ := parseHostAddr(r.RemoteAddr)
	trustedPeer := inPrefixes(c.forwarders, peer)
	txid, replaced := transactionID(r.Header, trustedPeer)
	w.Header().Set(HeaderTransactionID, txid)
	client, problem := clientAddr(peer, r.Header, c.forwarders)

	// The request's logger is built only when something is logged: most
	// requests log nothing, and With formats its attributes at once.
	log := func() *slog.Logger {
		return l.log.With("transaction_id", txid, "client_ip", addrString(client), "peer", r.RemoteAddr)
	}
	if replaced {
		log().Debug(LogTxID, "trusted_peer", trustedPeer)
	}
	refuse := func(reason Reason, status int, attrs ...any) {
		stealth := c.src.Stealth && status != http.StatusTooManyRequests && status != http.StatusRequestEntityTooLarge
		log().Info(LogRefused, append([]any{"reason", string(reason), "status", status, "stealth", stealth,
			"method", r.Method, "path", r.URL.Path}, attrs...)...)
		switch {
		case stealth:
			NotFound(w, r)
		case status == http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", c.challenge)
			http.Error(w, "401 unauthorized", status)
		case status == http.StatusTooManyRequests:
			w.Header().Set("Retry-After", RetryAfter)
			http.Error(w, "429 too many requests", status)
		default:
			http.Error(w, http.StatusText(status), status)
		}
	}

	switch {
	case problem != "" && len(c.allow) > 0:
		refuse(ReasonClientUnknown, http.StatusForbidden, "detail", problem)
		return
	case len(c.allow) > 0 && !inPrefixes(c.allow, client):
		refuse(ReasonCIDR, http.StatusForbidden)
		return
	case !inWindows(c.windows, l.opts.now()):
		refuse(ReasonTime, http.StatusForbidden)
		return
	}
	var user string
	if len(c.creds) > 0 {
		var why Reason
		if user, why = c.authenticate(r); why != "" {
			var attrs []any
			if why == ReasonAuthWrongPassword {
				// Only a configured user name is logged: an unknown one
				// may be a password typed into the wrong field.
				u, _, _ := r.BasicAuth()
				attrs = []any{"user", u}
			}
			refuse(why, http.StatusUnauthorized, attrs...)
			return
		}
	}
	if limit := c.src.MaxBodyBytes; limit > 0 && r.ContentLength > limit {
		refuse(ReasonBodyTooLarge, http.StatusRequestEntityTooLarge, "content_length", r.ContentLength)
		return
	}
	if !l.acquire(c.src.MaxConcurrent) {
		refuse(ReasonConcurrency, http.StatusTooManyRequests, "max_concurrent", c.src.MaxConcurrent)
		return
	}
	defer l.inflight.Add(-1)

	ctx := context.WithValue(r.Context(), keyTxID, txid)
	ctx = context.WithValue(ctx, keyClient, client)
	if user != "" {
		ctx = context.WithValue(ctx, keyUser, user)
	}
	r2 := r.WithContext(ctx)
	r2.Header = r.Header.Clone()
	r2.Header.Set(HeaderTransactionID, txid)
	if len(c.creds) > 0 {
		r2.Header.Del("Authorization")
	}
	if !trustedPeer {
		for _, h := range clientAddrHeaders {
			r2.Header.Del(h)
		}
	}
	if limit := c.src.MaxBodyBytes; limit > 0 && r.Body != nil && r.Body != http.NoBody {
		w = limitBody(w, r2, limit, func() {
			log().Info(LogRefused, "reason", string(ReasonBodyTooLarge), "status", http.StatusRequestEntityTooLarge,
				"stealth", false, "method", r.Method, "path", r.URL.Path, "streamed", true, "max_body_bytes", limit)
		})
	}
	l.next.ServeHTTP(w, r2)
}

// NotFound is the answer of a stealth refusal: http.NotFound with an
// X-Transaction-Id (a fresh one unless already set). Answer unknown
// domains with it too, so that the two cannot be told apart by their
// headers.
func NotFound(w http.ResponseWriter, r *http.Request) {
	if w.Header().Get(HeaderTransactionID) == "" {
		w.Header().Set(HeaderTransactionID, rand.Text())
	}
	http.NotFound(w, r)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	return a.String()
}
