package storetest

import (
	"errors"
	"testing"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
)

// Run runs the whole conformance suite: RunCA plus runners, jobs, events,
// the audit log, blobs and locks. open must return a new, empty store that
// it closes through t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	RunCA(t, func(t *testing.T) ca.Store { return open(t) })
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"Ping", func(t *testing.T, s store.Store) {
			if err := s.Ping(testContext(t)); err != nil {
				t.Fatal(err)
			}
		}},
		{"RunnerRegister", testRunnerRegister},
		{"RunnerHeartbeat", testRunnerHeartbeat},
		{"RunnerList", testRunnerList},
		{"MarkOffline", testMarkOffline},
		{"JobSubmitClaimFinish", testJobSubmitClaimFinish},
		{"JobClaimOrderAndOwnership", testJobClaimOrderAndOwnership},
		{"JobLeaseExpiry", testJobLeaseExpiry},
		{"JobList", testJobList},
		{"JobSignals", testJobSignals},
		{"Events", testEvents},
		{"EventsAllOrNone", testEventsAllOrNone},
		{"PruneEvents", testPruneEvents},
		{"Audit", testAudit},
		{"ClaimRace", func(t *testing.T, s store.Store) { ClaimRace(t, []store.Store{s}, 20, 8) }},
		{"MarkOfflineRace", func(t *testing.T, s store.Store) { MarkOfflineRace(t, []store.Store{s}, 20, 8) }},
		{"BlobPutGet", testBlobPutGet},
		{"BlobDelete", testBlobDelete},
		{"BlobList", testBlobList},
		{"Lock", testLock},
		{"LockRace", func(t *testing.T, s store.Store) { LockRace(t, s) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, open(t)) })
	}
}

// wantErr fails t unless err matches target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
