package protocol_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/protocol"
)

func jwt(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256"}`)) + "." + enc([]byte(payload)) + ".c2ln"
}

const sha = "3f2a0c5e9b1d4e7f8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f"

func TestParseTokenHints(t *testing.T) {
	tests := []struct {
		name, token string
		wantErr     string
	}{
		{name: "good", token: jwt(`{"sub":"web-1","sha":"` + sha + `","exp":1900000000}`)},
		{name: "empty", token: " ", wantErr: "empty"},
		{name: "two parts", token: "a.b", wantErr: "3 dot-separated"},
		{name: "bad base64", token: "a.!!!.c", wantErr: "base64url"},
		{name: "not json", token: jwt(`[1,2]`), wantErr: "JSON object"},
		{name: "all missing", token: jwt(`{}`), wantErr: "no subject (sub), no root fingerprint (sha: 64 hex characters), no expiry (exp)"},
		{name: "short sha", token: jwt(`{"sub":"a","sha":"abcd","exp":1}`), wantErr: "root fingerprint"},
		{name: "huge", token: strings.Repeat("a", 9000), wantErr: "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := protocol.ParseTokenHints(tt.token)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Subject != "web-1" || h.RootFingerprint != sha || !h.Expiry.Equal(time.Unix(1900000000, 0)) {
				t.Fatalf("hints = %+v", h)
			}
		})
	}
}

func FuzzParseTokenHints(f *testing.F) {
	f.Add(jwt(`{"sub":"web-1","sha":"` + sha + `","exp":1900000000}`))
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, token string) {
		h, err := protocol.ParseTokenHints(token)
		if err == nil && (h.Subject == "" || len(h.RootFingerprint) != 64) {
			t.Fatalf("accepted a token without subject or fingerprint: %+v", h)
		}
	})
}
