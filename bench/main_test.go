package bench

import (
	"os"
	"testing"

	"github.com/leashpki/leash/internal/testpg"
)

// TestMain stops the throwaway PostgreSQL cluster the postgres
// sub-benchmarks start (see testpg).
func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }
