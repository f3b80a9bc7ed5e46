package e2e

import (
	"context"
	"os"
	"testing"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/gateway/store/pgstore"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/internal/testpg"
)

func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }

// forEachStore runs fn once per store backend: SQLite, and a real
// PostgreSQL database (fresh per test) that every gateway of the test
// opens its own pool on.
func forEachStore(t *testing.T, fn func(t *testing.T, opts testharness.Options)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, testharness.Options{})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := testpg.Start(t)
		fn(t, testharness.Options{OpenStore: func(t testing.TB) store.Store {
			t.Helper()
			st, err := pgstore.Open(context.Background(), url)
			if err != nil {
				t.Fatalf("open postgres store: %v", err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		}})
	})
}
