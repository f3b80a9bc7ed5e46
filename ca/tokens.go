package ca

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.step.sm/crypto/jose"

	leashtls "github.com/leashpki/leash/tls"
)

// Token lifetimes.
const (
	DefaultTokenTTL = 15 * time.Minute
	MinTokenTTL     = time.Minute
	MaxTokenTTL     = 7 * 24 * time.Hour
)

// TokenRequest asks for a one-time token.
type TokenRequest struct {
	Profile string        // runner (default), operator, prometheus, ui-proxy
	Subject string        // the runner id or client name the token is bound to
	TTL     time.Duration // 0 = DefaultTokenTTL
}

// Token is a minted one-time token. Value is shown once and never stored.
type Token struct {
	ID              string
	Value           string
	Profile         string
	Subject         string
	ExpiresAt       time.Time
	RootFingerprint string
}

// tokenClaims is the JWT payload. It follows step's JWK provisioner format:
// iss = provisioner (profile) name, aud = https://<audience>/1.0/sign,
// sub = subject, sans, sha = root fingerprint (CA pinning).
type tokenClaims struct {
	jose.Claims
	SANs []string `json:"sans"`
	SHA  string   `json:"sha"`
}

func (a *Authority) audience() string { return "https://" + a.settings.Audience + "/1.0/sign" }

// CreateToken mints a one-time enrollment token for a client profile and
// records it in the store, where it can be listed and revoked before use.
func (a *Authority) CreateToken(ctx context.Context, req TokenRequest) (Token, error) {
	if req.Profile == "" {
		req.Profile = ProfileRunner
	}
	if req.TTL == 0 {
		req.TTL = DefaultTokenTTL
	}
	p, err := a.Profile(req.Profile)
	if err != nil {
		return Token{}, err
	}
	var errs []error
	if !p.Client() {
		errs = append(errs, fmt.Errorf("%w: enrollment tokens are for client profiles; issue server certificates with: leash cert issue server", ErrPolicy))
	}
	if err := leashtls.ValidName(req.Subject); err != nil {
		errs = append(errs, fmt.Errorf("token subject: %w", err))
	}
	if req.TTL < MinTokenTTL || req.TTL > MaxTokenTTL {
		errs = append(errs, fmt.Errorf("token lifetime %s is outside [%s, %s]", req.TTL, MinTokenTTL, MaxTokenTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return Token{}, err
	}
	return a.mintToken(ctx, TokenEnroll, p, req.Subject, nil, req.TTL)
}

// mintToken signs a token and records it. hosts are the server SANs for
// direct server issuance; client profiles derive their identity URI.
func (a *Authority) mintToken(ctx context.Context, kind string, p Profile, subject string, hosts []string, ttl time.Duration) (Token, error) {
	sans, err := p.sans(subject, hosts)
	if err != nil {
		return Token{}, err
	}
	if !p.Client() && subject == "" {
		subject = sans[0]
	}
	id, err := randomID()
	if err != nil {
		return Token{}, err
	}
	now := a.clock()
	exp := now.Add(ttl)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: a.tokenKey, KeyID: a.tokenJWK.KeyID}},
		new(jose.SignerOptions).WithType("JWT").WithHeader("kid", a.tokenJWK.KeyID))
	if err != nil {
		return Token{}, fmt.Errorf("token signer: %w", err)
	}
	claims := tokenClaims{
		Claims: jose.Claims{
			ID:        id,
			Issuer:    p.Name,
			Subject:   subject,
			Audience:  jose.Audience{a.audience()},
			NotBefore: jose.NewNumericDate(now),
			IssuedAt:  jose.NewNumericDate(now),
			Expiry:    jose.NewNumericDate(exp),
		},
		SANs: sans,
		SHA:  a.settings.RootFingerprint,
	}
	value, err := jose.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		return Token{}, fmt.Errorf("sign token: %w", err)
	}
	rec := TokenRecord{ID: id, Kind: kind, Profile: p.Name, Subject: subject, CreatedAt: now, ExpiresAt: exp}
	if err := a.store.PutToken(ctx, rec); err != nil {
		return Token{}, fmt.Errorf("record token: %w", err)
	}
	return Token{ID: id, Value: value, Profile: p.Name, Subject: subject, ExpiresAt: exp,
		RootFingerprint: a.settings.RootFingerprint}, nil
}

func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// verifyToken checks a token completely before step sees it: algorithm,
// key id, signature, issuer, audience, root pin, validity window and store
// state. Every refusal names its reason.
func (a *Authority) verifyToken(ctx context.Context, value string) (tokenClaims, Profile, error) {
	var c tokenClaims
	jwt, err := jose.ParseSigned(value)
	if err != nil {
		return c, Profile{}, fmt.Errorf("%w: not a signed JWT: %v", ErrTokenInvalid, jose.TrimPrefix(err))
	}
	if len(jwt.Headers) != 1 {
		return c, Profile{}, fmt.Errorf("%w: token must carry exactly one signature", ErrTokenInvalid)
	}
	h := jwt.Headers[0]
	if h.Algorithm != string(jose.ES256) {
		return c, Profile{}, fmt.Errorf("%w: signature algorithm %q is not accepted; this CA only accepts ES256 tokens it signed itself", ErrTokenInvalid, h.Algorithm)
	}
	if h.KeyID != a.tokenJWK.KeyID {
		return c, Profile{}, fmt.Errorf("%w: token was signed by another key (kid %q); it was not minted by this CA", ErrTokenInvalid, h.KeyID)
	}
	if err := jwt.Claims(a.tokenJWK.Key, &c); err != nil {
		return c, Profile{}, fmt.Errorf("%w: signature does not verify against this CA's token key (forged or altered)", ErrTokenInvalid)
	}
	p, ok := a.profiles[c.Issuer]
	if !ok {
		return c, Profile{}, fmt.Errorf("%w: issuer %q is not a Leash profile", ErrTokenInvalid, c.Issuer)
	}
	if !slices.Contains([]string(c.Audience), a.audience()) {
		return c, Profile{}, fmt.Errorf("%w: audience %v is not this CA (want %s)", ErrTokenInvalid, []string(c.Audience), a.audience())
	}
	if c.SHA != a.settings.RootFingerprint {
		return c, Profile{}, fmt.Errorf("%w: token is pinned to another root (sha %q)", ErrTokenInvalid, c.SHA)
	}
	if c.ID == "" || c.Subject == "" || c.Expiry == nil {
		return c, Profile{}, fmt.Errorf("%w: token lacks jti, sub or exp", ErrTokenInvalid)
	}
	now := a.clock()
	if exp := c.Expiry.Time(); !now.Before(exp) {
		return c, Profile{}, fmt.Errorf("%w at %s (%s ago); mint a new one with: leash token create", ErrTokenExpired,
			exp.UTC().Format(time.RFC3339), now.Sub(exp).Round(time.Second))
	}
	if c.NotBefore != nil && now.Add(time.Minute).Before(c.NotBefore.Time()) {
		return c, Profile{}, fmt.Errorf("%w: token is not valid before %s (check the clocks)", ErrTokenInvalid, c.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	rec, err := a.store.Token(ctx, c.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		return c, Profile{}, fmt.Errorf("%w: token %s is unknown to this CA's store", ErrTokenInvalid, c.ID)
	case err != nil:
		return c, Profile{}, fmt.Errorf("look up token: %w", err)
	case !rec.RevokedAt.IsZero():
		return c, Profile{}, fmt.Errorf("%w: token %s was revoked at %s", ErrTokenRevoked, c.ID, rec.RevokedAt.Format(time.RFC3339))
	case !rec.UsedAt.IsZero():
		return c, Profile{}, fmt.Errorf("%w: token %s was spent at %s; mint a new one with: leash token create", ErrTokenUsed, c.ID, rec.UsedAt.Format(time.RFC3339))
	case rec.Subject != c.Subject || rec.Profile != c.Issuer:
		return c, Profile{}, fmt.Errorf("%w: token %s does not match its record", ErrTokenInvalid, c.ID)
	}
	return c, p, nil
}

// RevokeToken revokes an unused token.
func (a *Authority) RevokeToken(ctx context.Context, id string) error {
	return a.store.RevokeToken(ctx, id, a.clock())
}

// TokenState is the lifecycle state of a token.
type TokenState string

// Token states.
const (
	TokenPending TokenState = "pending"
	TokenUsed    TokenState = "used"
	TokenRevoked TokenState = "revoked"
	TokenExpired TokenState = "expired"
)

// TokenInfo is a token record with its state at the time of listing.
type TokenInfo struct {
	TokenRecord
	State TokenState
}

// Tokens lists tokens with their state.
func (a *Authority) Tokens(ctx context.Context, q TokenQuery) ([]TokenInfo, error) {
	recs, err := a.store.Tokens(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	now := a.clock()
	out := make([]TokenInfo, 0, len(recs))
	for _, r := range recs {
		st := TokenPending
		switch {
		case !r.UsedAt.IsZero():
			st = TokenUsed
		case !r.RevokedAt.IsZero():
			st = TokenRevoked
		case !now.Before(r.ExpiresAt):
			st = TokenExpired
		}
		out = append(out, TokenInfo{TokenRecord: r, State: st})
	}
	return out, nil
}
