package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
)

func testTokenPutGet(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	want := tokenRecord("jti-1", ca.TokenEnroll, "runner-7", baseTime())
	putToken(ctx, t, s, want)
	got, err := s.Token(ctx, "jti-1")
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	checkToken(t, "Token", got, want)
	if _, err := s.Token(ctx, "jti-2"); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("Token for an id never stored: %v, want ErrNotFound", err)
	}
}

func testTokenDuplicate(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	first := tokenRecord("jti-1", ca.TokenEnroll, "runner-7", baseTime())
	putToken(ctx, t, s, first)
	second := tokenRecord("jti-1", ca.TokenDirect, "mallory", baseTime().Add(time.Hour))
	if err := s.PutToken(ctx, second); !errors.Is(err, ca.ErrExists) {
		t.Fatalf("second PutToken with id jti-1: %v, want ErrExists", err)
	}
	got, err := s.Token(ctx, "jti-1")
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	checkToken(t, "after duplicate put", got, first)
}

func testTokenList(t *testing.T, open func(t *testing.T) ca.Store) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := map[string]ca.TokenRecord{
		"t-c": tokenRecord("t-c", ca.TokenEnroll, "r1", base),
		"t-a": tokenRecord("t-a", ca.TokenDirect, "alice", base.Add(time.Nanosecond)),
		"t-d": tokenRecord("t-d", ca.TokenEnroll, "r2", base.Add(500*time.Millisecond)),
		"t-b": tokenRecord("t-b", ca.TokenEnroll, "r1", base.Add(time.Second)),
	}
	ctx := testContext(t)
	s := open(t)
	for _, id := range []string{"t-a", "t-b", "t-c", "t-d"} {
		putToken(ctx, t, s, recs[id])
	}
	// Spent, revoked and linked tokens are listed with their state.
	spentAt := base.Add(time.Minute)
	if err := s.SpendToken(ctx, "t-b", spentAt); err != nil {
		t.Fatalf("SpendToken: %v", err)
	}
	if err := s.SetTokenCertificate(ctx, "t-b", "5005"); err != nil {
		t.Fatalf("SetTokenCertificate: %v", err)
	}
	if err := s.RevokeToken(ctx, "t-d", spentAt); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	tb, td := recs["t-b"], recs["t-d"]
	tb.UsedAt, tb.CertSerial = spentAt, "5005"
	td.RevokedAt = spentAt
	recs["t-b"], recs["t-d"] = tb, td

	tests := []struct {
		name string
		q    ca.TokenQuery
		want []string
	}{
		{"all, newest first", ca.TokenQuery{}, []string{"t-b", "t-d", "t-a", "t-c"}},
		{"kind enroll", ca.TokenQuery{Kind: ca.TokenEnroll}, []string{"t-b", "t-d", "t-c"}},
		{"kind direct", ca.TokenQuery{Kind: ca.TokenDirect}, []string{"t-a"}},
		{"subject", ca.TokenQuery{Subject: "r1"}, []string{"t-b", "t-c"}},
		{"kind and subject", ca.TokenQuery{Kind: ca.TokenDirect, Subject: "r1"}, nil},
		{"limit", ca.TokenQuery{Limit: 2}, []string{"t-b", "t-d"}},
		{"limit with filter", ca.TokenQuery{Kind: ca.TokenEnroll, Subject: "r1", Limit: 1}, []string{"t-b"}},
		{"limit above count", ca.TokenQuery{Limit: 10}, []string{"t-b", "t-d", "t-a", "t-c"}},
		{"no match", ca.TokenQuery{Subject: "nobody"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Tokens(ctx, tt.q)
			if err != nil {
				t.Fatalf("Tokens: %v", err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			var d differ
			d.strings("ids", ids, tt.want)
			d.report(t, "Tokens")
			if len(d.diffs) > 0 {
				return
			}
			for _, r := range got {
				checkToken(t, "record "+r.ID, r, recs[r.ID])
			}
		})
	}
}

// tokenOp is a state change applied to a token.
type tokenOp int

const (
	spend tokenOp = iota
	revoke
)

func (op tokenOp) String() string {
	if op == spend {
		return "SpendToken"
	}
	return "RevokeToken"
}

func (op tokenOp) apply(ctx context.Context, s ca.Store, id string, at time.Time) error {
	if op == spend {
		return s.SpendToken(ctx, id, at)
	}
	return s.RevokeToken(ctx, id, at)
}

func testTokenTransitions(t *testing.T, open func(t *testing.T) ca.Store) {
	const id = "jti-9"
	setAt := baseTime().Add(time.Minute) // when the setup op ran
	actAt := baseTime().Add(time.Hour)   // when the op under test ran
	tests := []struct {
		name        string
		setup       []tokenOp
		act         tokenOp
		actID       string
		wantErr     error
		wantUsed    time.Time
		wantRevoked time.Time
	}{
		{name: "spend open token", act: spend, actID: id, wantUsed: actAt},
		{name: "spend twice", setup: []tokenOp{spend}, act: spend, actID: id, wantErr: ca.ErrTokenUsed, wantUsed: setAt},
		{name: "spend revoked", setup: []tokenOp{revoke}, act: spend, actID: id, wantErr: ca.ErrTokenRevoked, wantRevoked: setAt},
		{name: "spend unknown", act: spend, actID: "jti-unknown", wantErr: ca.ErrNotFound},
		{name: "revoke open token", act: revoke, actID: id, wantRevoked: actAt},
		{name: "revoke spent", setup: []tokenOp{spend}, act: revoke, actID: id, wantErr: ca.ErrTokenUsed, wantUsed: setAt},
		{name: "revoke twice", setup: []tokenOp{revoke}, act: revoke, actID: id, wantErr: ca.ErrTokenRevoked, wantRevoked: setAt},
		{name: "revoke unknown", act: revoke, actID: "jti-unknown", wantErr: ca.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			s := open(t)
			rec := tokenRecord(id, ca.TokenEnroll, "r1", baseTime())
			putToken(ctx, t, s, rec)
			for _, op := range tt.setup {
				if err := op.apply(ctx, s, id, setAt); err != nil {
					t.Fatalf("setup %s: %v", op, err)
				}
			}
			err := tt.act.apply(ctx, s, tt.actID, actAt)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("%s: %v, want success", tt.act, err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("%s: %v, want %v", tt.act, err, tt.wantErr)
			}
			if tt.actID != id {
				if _, err := s.Token(ctx, tt.actID); !errors.Is(err, ca.ErrNotFound) {
					t.Errorf("Token(%s) after %s on an unknown id: %v, want ErrNotFound", tt.actID, tt.act, err)
				}
			}
			got, err := s.Token(ctx, id)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			rec.UsedAt, rec.RevokedAt = tt.wantUsed, tt.wantRevoked
			checkToken(t, "Token after "+tt.act.String(), got, rec)
		})
	}
}

func testSetTokenCertificate(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	rec := tokenRecord("jti-5", ca.TokenEnroll, "r1", baseTime())
	putToken(ctx, t, s, rec)
	other := tokenRecord("jti-6", ca.TokenEnroll, "r2", baseTime())
	putToken(ctx, t, s, other)
	at := baseTime().Add(time.Minute)
	if err := s.SpendToken(ctx, "jti-5", at); err != nil {
		t.Fatalf("SpendToken: %v", err)
	}
	if err := s.SetTokenCertificate(ctx, "jti-5", "123456789012345678901234567890"); err != nil {
		t.Fatalf("SetTokenCertificate: %v", err)
	}
	rec.UsedAt, rec.CertSerial = at, "123456789012345678901234567890"
	got, err := s.Token(ctx, "jti-5")
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	checkToken(t, "linked Token", got, rec)
	gotOther, err := s.Token(ctx, "jti-6")
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	checkToken(t, "other Token", gotOther, other)
	if err := s.SetTokenCertificate(ctx, "jti-unknown", "1"); !errors.Is(err, ca.ErrNotFound) {
		t.Errorf("SetTokenCertificate for an unknown id: %v, want ErrNotFound", err)
	}
}
