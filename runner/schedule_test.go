package runner

import (
	"testing"
	"time"
)

func TestRenewAt(t *testing.T) {
	nb := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const life = 300 * time.Hour // 2/3 = 200h, 10% = 30h, 90% = 270h
	tests := []struct {
		name     string
		notAfter time.Time
		jitter   float64
		u        float64
		want     time.Time
		tol      time.Duration // float rounding near u = 1
	}{
		{"two thirds at u=0.5", nb.Add(life), 0.1, 0.5, nb.Add(200 * time.Hour), 0},
		{"no jitter ignores u", nb.Add(life), 0, 0.9, nb.Add(200 * time.Hour), 0},
		{"earliest at u=0", nb.Add(life), 0.1, 0, nb.Add(170 * time.Hour), 0},
		{"latest as u nears 1", nb.Add(life), 0.1, justBelowOne, nb.Add(230 * time.Hour), time.Millisecond},
		{"quarter point", nb.Add(life), 0.1, 0.25, nb.Add(185 * time.Hour), 0},
		{"capped at 90% of the lifetime", nb.Add(life), 0.5, justBelowOne, nb.Add(270 * time.Hour), 0},
		{"never before notBefore", nb.Add(life), 1, 0, nb, 0},
		{"short lifetime", nb.Add(90 * time.Second), 0.1, 0.5, nb.Add(60 * time.Second), 0},
		{"zero lifetime", nb, 0.1, 0.5, nb, 0},
		{"negative lifetime", nb.Add(-time.Hour), 0.1, 0.5, nb, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := renewAt(nb, tt.notAfter, tt.jitter, tt.u)
			if d := got.Sub(tt.want).Abs(); d > tt.tol {
				t.Errorf("renewAt = notBefore+%v, want notBefore+%v", got.Sub(nb), tt.want.Sub(nb))
			}
		})
	}
}

func TestRandomRenewAtStaysInJitterWindow(t *testing.T) {
	nb := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const life = 24 * time.Hour
	center := nb.Add(life * 2 / 3)
	lo, hi := center.Add(-life/10), center.Add(life/10)
	var early, late bool
	for range 2000 {
		at := randomRenewAt(nb, nb.Add(life))
		if at.Before(lo) || at.After(hi) {
			t.Fatalf("randomRenewAt = notBefore+%v, want within [%v, %v]", at.Sub(nb), lo.Sub(nb), hi.Sub(nb))
		}
		early = early || at.Before(center)
		late = late || at.After(center)
	}
	if !early || !late {
		t.Errorf("2000 draws were not spread around two thirds (some early: %v, some late: %v)", early, late)
	}
}
