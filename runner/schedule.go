package runner

import (
	"math/rand/v2"
	"time"
)

// renewAt is when a certificate valid from notBefore to notAfter should be
// renewed: at two thirds of its lifetime, moved by up to ±jitter of the
// lifetime (u in [0,1) picks where), never before notBefore and never later
// than 90% of the lifetime, so retries still have time.
func renewAt(notBefore, notAfter time.Time, jitter float64, u float64) time.Time {
	life := notAfter.Sub(notBefore)
	if life <= 0 {
		return notBefore
	}
	offset := time.Duration((u*2 - 1) * jitter * float64(life))
	at := notBefore.Add(life*2/3 + offset)
	if latest := notBefore.Add(life / 10 * 9); at.After(latest) {
		at = latest
	}
	if at.Before(notBefore) {
		at = notBefore
	}
	return at
}

// renewJitter is the share of the lifetime the renewal moment may move.
const renewJitter = 0.1

func randomRenewAt(notBefore, notAfter time.Time) time.Time {
	return renewAt(notBefore, notAfter, renewJitter, rand.Float64())
}
