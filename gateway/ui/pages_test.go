package ui

import (
	"testing"
	"time"
)

// A runner certificate's not-after is coloured when it is within six
// hours of expiry (renewal is then late) or past it.
func TestExpiryClass(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		notAfter time.Time
		want     string
	}{
		{time.Time{}, ""},
		{now.Add(-time.Second), "expired"},
		{now, "expired"},
		{now.Add(time.Minute), "expiring"},
		{now.Add(6*time.Hour - time.Second), "expiring"},
		{now.Add(6 * time.Hour), "ok"},
		{now.Add(24 * time.Hour), "ok"},
	}
	for _, tt := range tests {
		if got := expiryClass(now, tt.notAfter); got != tt.want {
			t.Errorf("not after %v: %q, want %q", tt.notAfter, got, tt.want)
		}
	}
}
