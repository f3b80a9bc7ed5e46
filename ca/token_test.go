package ca_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/leashpki/leash/ca"
)

func TestTokenSingleUse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	ctx := context.Background()
	tok := f.enrollToken(t, ca.ProfileRunner, "web-1")
	if tok.RootFingerprint != f.auth.RootFingerprint() || len(tok.RootFingerprint) != 64 {
		t.Fatalf("token carries root fingerprint %q, want %q", tok.RootFingerprint, f.auth.RootFingerprint())
	}
	if _, err := f.auth.Enroll(ctx, tok.Value, newCSR(t, newKey(t), csrOpts{cn: "web-1"})); err != nil {
		t.Fatalf("first enroll: %v", err)
	}
	_, err := f.auth.Enroll(ctx, tok.Value, newCSR(t, newKey(t), csrOpts{cn: "web-1"}))
	if !errors.Is(err, ca.ErrTokenUsed) || !strings.Contains(err.Error(), "spent") {
		t.Fatalf("reuse: got %v, want ErrTokenUsed saying it was spent", err)
	}
	infos, err := f.auth.Tokens(ctx, ca.TokenQuery{Kind: ca.TokenEnroll})
	if err != nil || len(infos) != 1 || infos[0].State != ca.TokenUsed || infos[0].CertSerial == "" {
		t.Fatalf("Tokens = %+v, %v; want one used token linked to its certificate", infos, err)
	}
}

// TestTokenRace: 50 goroutines spend one token at once; exactly one wins.
func TestTokenRace(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	ctx := context.Background()
	tok := f.enrollToken(t, ca.ProfileRunner, "race")
	const n = 50
	csrs := make([]*x509.CertificateRequest, n)
	for i := range csrs {
		csrs[i] = newCSR(t, newKey(t), csrOpts{})
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = f.auth.Enroll(ctx, tok.Value, csrs[i])
		}()
	}
	close(start)
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case errors.Is(err, ca.ErrTokenUsed):
		default:
			t.Errorf("loser got %v, want ErrTokenUsed", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d enrollments succeeded with one token, want exactly 1", wins)
	}
	certs, err := f.auth.Certificates(ctx, ca.InventoryQuery{Subject: "race"})
	if err != nil || len(certs) != 1 {
		t.Fatalf("inventory holds %d certificates for the token (%v), want 1", len(certs), err)
	}
}

func TestTokenExpired(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	tok := f.enrollToken(t, ca.ProfileRunner, "late")
	f.clock.Advance(ca.DefaultTokenTTL + time.Second)
	_, err := f.auth.Enroll(context.Background(), tok.Value, newCSR(t, newKey(t), csrOpts{}))
	if !errors.Is(err, ca.ErrTokenExpired) || !strings.Contains(err.Error(), "leash token create") {
		t.Fatalf("got %v, want ErrTokenExpired with a hint", err)
	}
	infos, _ := f.auth.Tokens(context.Background(), ca.TokenQuery{})
	if len(infos) != 1 || infos[0].State != ca.TokenExpired {
		t.Fatalf("token state %+v, want expired", infos)
	}
}

func TestTokenRevokedBeforeUse(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	ctx := context.Background()
	tok := f.enrollToken(t, ca.ProfileRunner, "gone")
	if err := f.auth.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Enroll(ctx, tok.Value, newCSR(t, newKey(t), csrOpts{})); !errors.Is(err, ca.ErrTokenRevoked) {
		t.Fatalf("got %v, want ErrTokenRevoked", err)
	}
	if err := f.auth.RevokeToken(ctx, tok.ID); !errors.Is(err, ca.ErrTokenRevoked) {
		t.Fatalf("second revoke: %v, want ErrTokenRevoked", err)
	}
	if err := f.auth.RevokeToken(ctx, "nope"); !errors.Is(err, ca.ErrNotFound) {
		t.Fatalf("unknown token: %v, want ErrNotFound", err)
	}
}

func TestTokenCreateRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	for _, tc := range []struct {
		name string
		req  ca.TokenRequest
		want string
	}{
		{"server profile", ca.TokenRequest{Profile: "server", Subject: "x"}, "client profiles"},
		{"unknown profile", ca.TokenRequest{Profile: "admin", Subject: "x"}, "unknown profile"},
		{"bad name", ca.TokenRequest{Subject: "../etc"}, "not allowed"},
		{"empty name", ca.TokenRequest{}, "empty"},
		{"ttl too short", ca.TokenRequest{Subject: "x", TTL: time.Second}, "outside"},
		{"ttl too long", ca.TokenRequest{Subject: "x", TTL: 30 * 24 * time.Hour}, "outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.auth.CreateToken(context.Background(), tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

// TestForgedTokens: tokens the CA did not mint, or minted for someone else,
// are refused with a reason that says why.
func TestForgedTokens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ca.KeyECP256)
	ctx := context.Background()
	genuine := f.enrollToken(t, ca.ProfileRunner, "victim")
	claims := decodeClaims(t, genuine.Value)

	keyPEM, err := os.ReadFile(filepath.Join(f.dir, ca.TokenKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tokenKey, err := ca.ParsePrivateKey(ca.TokenKeyFile, keyPEM, f.password)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(tokenKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	kid := headerOf(t, genuine.Value)["kid"].(string)

	with := func(mut func(map[string]any)) map[string]any {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		mut(c)
		return c
	}
	signES := func(c map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: tokenKey, KeyID: kid}},
			new(jose.SignerOptions).WithType("JWT").WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		v, err := jose.Signed(s).Claims(c).CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	otherKey := newKey(t)
	for _, tc := range []struct {
		name  string
		token string
		want  string
	}{
		{"alg none", rawJWT(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, claims, nil), `algorithm "none" is not accepted`},
		{"HS256 keyed with the public key", rawJWT(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, claims,
			func(in []byte) []byte { m := hmac.New(sha256.New, pubPEM); m.Write(in); return m.Sum(nil) }), "HS256"},
		{"HS256 keyed with the DER public key", rawJWT(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, claims,
			func(in []byte) []byte { m := hmac.New(sha256.New, pubDER); m.Write(in); return m.Sum(nil) }), "HS256"},
		{"other key, same kid", func() string {
			s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: otherKey}, new(jose.SignerOptions).WithHeader("kid", kid))
			v, _ := jose.Signed(s).Claims(claims).CompactSerialize()
			return v
		}(), "does not verify"},
		{"wrong audience", signES(with(func(c map[string]any) { c["aud"] = "https://evil.example/1.0/sign" })), "audience"},
		{"step legacy audience", signES(with(func(c map[string]any) { c["aud"] = "step-certificate-authority" })), "audience"},
		{"expired", signES(with(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), "expired"},
		{"pinned to another root", signES(with(func(c map[string]any) { c["sha"] = strings.Repeat("ab", 32) })), "another root"},
		{"unknown issuer", signES(with(func(c map[string]any) { c["iss"] = "admin" })), "not a Leash profile"},
		{"not minted (unknown jti)", signES(with(func(c map[string]any) { c["jti"] = "feedface" })), "unknown to this CA"},
		{"subject swapped", signES(with(func(c map[string]any) { c["sub"] = "intruder" })), "does not match its record"},
		{"tampered payload", tamper(t, genuine.Value), "does not verify"},
		{"garbage", "not-a-token", "not a signed JWT"},
		{"empty", "", "not a signed JWT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.auth.Enroll(ctx, tc.token, newCSR(t, newKey(t), csrOpts{}))
			if err == nil {
				t.Fatal("forged token was accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name the reason %q", err, tc.want)
			}
		})
	}
	// None of the forgeries spent the genuine token.
	if _, err := f.auth.Enroll(ctx, genuine.Value, newCSR(t, newKey(t), csrOpts{})); err != nil {
		t.Fatalf("genuine token after forgeries: %v", err)
	}
}

func decodeClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	return decodePart(t, strings.Split(tok, ".")[1])
}

func headerOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	return decodePart(t, strings.Split(tok, ".")[0])
}

func decodePart(t *testing.T, s string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// rawJWT builds a compact JWT by hand, so tests can forge what jose refuses
// to produce.
func rawJWT(t *testing.T, header, claims map[string]any, sign func([]byte) []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	sig := ""
	if sign != nil {
		sig = base64.RawURLEncoding.EncodeToString(sign([]byte(in)))
	}
	return in + "." + sig
}

func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	c := decodePart(t, parts[1])
	c["sub"] = "intruder"
	b, _ := json.Marshal(c)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}
