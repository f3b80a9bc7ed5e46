package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
)

func testCRL(t *testing.T, open func(t *testing.T) ca.Store) {
	ctx := testContext(t)
	s := open(t)
	if _, err := s.CRL(ctx); !errors.Is(err, ca.ErrNotFound) {
		t.Fatalf("CRL on an empty store: %v, want ErrNotFound", err)
	}
	crl := func(number int64, der byte) ca.CRLRecord {
		this := baseTime().Add(time.Duration(number) * time.Hour)
		return ca.CRLRecord{Number: number, ThisUpdate: this, NextUpdate: this.Add(7 * 24 * time.Hour),
			Duration: 7 * 24 * time.Hour, DER: []byte{0x30, 0x00, der}}
	}
	// Steps run in order on one store; newest is the CRL expected after.
	steps := []struct {
		name    string
		put     ca.CRLRecord
		wantErr error
		newest  ca.CRLRecord
	}{
		{"first", crl(1, 0xa1), nil, crl(1, 0xa1)},
		{"next number replaces", crl(2, 0xa2), nil, crl(2, 0xa2)},
		{"lower number refused", crl(1, 0xb1), ca.ErrExists, crl(2, 0xa2)},
		{"same number refused", crl(2, 0xb2), ca.ErrExists, crl(2, 0xa2)},
		{"gap in numbers allowed", crl(7, 0xa7), nil, crl(7, 0xa7)},
		{"number between stored ones refused", crl(5, 0xb5), ca.ErrExists, crl(7, 0xa7)},
	}
	for _, st := range steps {
		err := s.PutCRL(ctx, st.put)
		switch {
		case st.wantErr == nil && err != nil:
			t.Fatalf("%s: PutCRL(%d): %v", st.name, st.put.Number, err)
		case st.wantErr != nil && !errors.Is(err, st.wantErr):
			t.Fatalf("%s: PutCRL(%d): %v, want %v", st.name, st.put.Number, err, st.wantErr)
		}
		got, err := s.CRL(ctx)
		if err != nil {
			t.Fatalf("%s: CRL: %v", st.name, err)
		}
		checkCRL(t, st.name+": CRL", got, st.newest)
	}
}
