package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
)

// SpendRace stores tokens fresh tokens through stores[0], then spends each
// from racers goroutines at once, spread round-robin over stores (several
// stores on one database stand for several processes). It fails t unless
// every token has exactly one winner, every loser gets ca.ErrTokenUsed, and
// the stored UsedAt is the winner's time.
func SpendRace(t *testing.T, stores []ca.Store, tokens, racers int) {
	t.Helper()
	if len(stores) == 0 || tokens < 1 || racers < 1 {
		t.Fatalf("SpendRace: need stores, tokens and racers (got %d, %d, %d)", len(stores), tokens, racers)
	}
	ctx := testContext(t)
	ids := make([]string, tokens)
	for i := range ids {
		ids[i] = fmt.Sprintf("race-%03d", i)
		putToken(ctx, t, stores[0], tokenRecord(ids[i], ca.TokenEnroll, "racer", baseTime()))
	}
	// Each racer spends at its own instant, so the stored UsedAt shows
	// which call won.
	spendAt := func(racer int) time.Time { return baseTime().Add(time.Duration(racer+1) * time.Millisecond) }

	errs := make([][]error, tokens)
	for i := range errs {
		errs[i] = make([]error, racers)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, id := range ids {
		for j := range racers {
			s := stores[(i*racers+j)%len(stores)]
			wg.Go(func() {
				<-start
				errs[i][j] = s.SpendToken(ctx, id, spendAt(j))
			})
		}
	}
	close(start)
	// Every call is bounded by ctx's deadline, so Wait ends.
	wg.Wait()

	for i, id := range ids {
		winner := -1
		for j, err := range errs[i] {
			switch {
			case err == nil && winner >= 0:
				t.Errorf("token %s: racers %d and %d both spent it", id, winner, j)
			case err == nil:
				winner = j
			case !errors.Is(err, ca.ErrTokenUsed):
				t.Errorf("token %s: racer %d: %v, want success or ErrTokenUsed", id, j, err)
			}
		}
		if winner < 0 {
			t.Errorf("token %s: none of %d racers spent it", id, racers)
			continue
		}
		for _, s := range stores {
			rec, err := s.Token(ctx, id)
			if err != nil {
				t.Fatalf("Token(%s): %v", id, err)
			}
			if !rec.UsedAt.Equal(spendAt(winner)) {
				t.Errorf("token %s: UsedAt = %s, want the winning racer %d's time %s", id,
					rec.UsedAt.Format(time.RFC3339Nano), winner, spendAt(winner).Format(time.RFC3339Nano))
			}
		}
	}
}
