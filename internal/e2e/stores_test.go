package e2e

import (
	"testing"

	"github.com/leashpki/leash/internal/testharness"
)

// forEachStore runs fn once per store backend.
func forEachStore(t *testing.T, fn func(t *testing.T, opts testharness.Options)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, testharness.Options{})
	})
}
