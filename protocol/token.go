package protocol

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TokenHints is what a runner reads from an enrollment token before it
// trusts anything: whom the token enrolls and which root to pin.
type TokenHints struct {
	Subject         string
	RootFingerprint string // hex SHA-256 of the root certificate DER
	Expiry          time.Time
}

// maxTokenBytes bounds a token; real ones are well under 2 KiB.
const maxTokenBytes = 8 << 10

// ParseTokenHints decodes a token's payload WITHOUT verifying its
// signature: the gateway verifies the token when it is spent. The hints
// only tell the runner its name and the root fingerprint to pin, and the
// pin is what protects it from a gateway impostor.
func ParseTokenHints(token string) (TokenHints, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return TokenHints{}, errors.New("token is empty")
	}
	if len(token) > maxTokenBytes {
		return TokenHints{}, fmt.Errorf("token is %d bytes long; at most %d are allowed", len(token), maxTokenBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return TokenHints{}, fmt.Errorf("token is not a JWT: want 3 dot-separated parts, got %d", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return TokenHints{}, fmt.Errorf("token payload is not base64url: %w", err)
	}
	var claims struct {
		Sub string          `json:"sub"`
		SHA string          `json:"sha"`
		Exp json.RawMessage `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return TokenHints{}, fmt.Errorf("token payload is not a JSON object: %w", err)
	}
	var problems []string
	if claims.Sub == "" {
		problems = append(problems, "no subject (sub)")
	}
	if b, err := hex.DecodeString(claims.SHA); err != nil || len(b) != 32 {
		problems = append(problems, "no root fingerprint (sha: 64 hex characters)")
	}
	var exp int64
	if err := json.Unmarshal(claims.Exp, &exp); err != nil || exp <= 0 {
		problems = append(problems, "no expiry (exp)")
	}
	if len(problems) > 0 {
		return TokenHints{}, fmt.Errorf("token is not a Leash enrollment token: %s", strings.Join(problems, ", "))
	}
	return TokenHints{Subject: claims.Sub, RootFingerprint: strings.ToLower(claims.SHA), Expiry: time.Unix(exp, 0).UTC()}, nil
}
