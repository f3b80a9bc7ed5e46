package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/gateway/store"
)

func putBlob(t *testing.T, s store.Store, key string, value []byte, modified time.Time) {
	t.Helper()
	must(t, "put blob "+key, s.PutBlob(testContext(t), store.BlobRecord{Key: key, Value: value, Modified: modified}))
}

// putBlobs stores each key with its own name as the value.
func putBlobs(t *testing.T, s store.Store, keys ...string) {
	t.Helper()
	for _, k := range keys {
		putBlob(t, s, k, []byte(k), baseTime())
	}
}

// blobKeys lists every key in s.
func blobKeys(t *testing.T, s store.Store) []string {
	t.Helper()
	keys, err := s.ListBlobs(testContext(t), "", true)
	must(t, "list every blob", err)
	return keys
}

func checkBlob(t *testing.T, what string, got, want store.BlobRecord) {
	t.Helper()
	var d differ
	field(&d, "Key", got.Key, want.Key)
	d.bytes("Value", got.Value, want.Value)
	d.time("Modified", got.Modified, want.Modified)
	d.report(t, what)
}

func testBlobPutGet(t *testing.T, s store.Store) {
	ctx := testContext(t)
	// Every byte value, so that no encoding on the way mangles one.
	value := make([]byte, 256)
	for i := range value {
		value[i] = byte(i)
	}
	east := time.FixedZone("UTC+9", 9*60*60)
	first := store.BlobRecord{Key: "certificates/ca/gw.example.com/gw.example.com.key", Value: value,
		Modified: baseTime().In(east)}
	must(t, "put", s.PutBlob(ctx, first))
	got, err := s.Blob(ctx, first.Key)
	must(t, "get", err)
	checkBlob(t, "stored blob", got, first)

	replaced := store.BlobRecord{Key: first.Key, Value: []byte("-----BEGIN EC PRIVATE KEY-----\n"),
		Modified: baseTime().Add(time.Hour + time.Nanosecond)}
	must(t, "replace", s.PutBlob(ctx, replaced))
	got, err = s.Blob(ctx, first.Key)
	must(t, "get after replace", err)
	checkBlob(t, "replaced blob", got, replaced)

	empty := store.BlobRecord{Key: "empty", Modified: baseTime()}
	must(t, "put an empty value", s.PutBlob(ctx, empty))
	got, err = s.Blob(ctx, "empty")
	must(t, "get an empty value", err)
	checkBlob(t, "empty blob", got, empty)

	for _, key := range []string{"missing", "certificates/ca", "certificates/ca/gw.example.com/gw.example.com"} {
		_, err := s.Blob(ctx, key)
		wantErr(t, fmt.Sprintf("Blob(%q)", key), err, store.ErrNotFound)
	}
	if err := s.PutBlob(ctx, store.BlobRecord{Value: []byte("x"), Modified: baseTime()}); err == nil {
		t.Error("PutBlob without a key succeeded")
	}
	if got := blobKeys(t, s); !slices.Equal(got, []string{first.Key, "empty"}) {
		t.Errorf("keys = %q, want the two stored", got)
	}
}

func testBlobDelete(t *testing.T, s store.Store) {
	// "a/b-c" and "a/b0" sort just before and just after everything below
	// "a/b/"; "%" and "_" are SQL LIKE's wildcards.
	keys := []string{"a/b", "a/b-c", "a/b/c", "a/b/c/d", "a/b0", "a/bc", "a/x", "x%/1", "x_/2", "xa/3", "xab/4"}
	tests := []struct {
		key  string
		want []string // the keys left, in byte order
	}{
		{"a/b", []string{"a/b-c", "a/b0", "a/bc", "a/x", "x%/1", "x_/2", "xa/3", "xab/4"}},
		{"a/b/c", []string{"a/b", "a/b-c", "a/b0", "a/bc", "a/x", "x%/1", "x_/2", "xa/3", "xab/4"}},
		{"a/b/c/d", []string{"a/b", "a/b-c", "a/b/c", "a/b0", "a/bc", "a/x", "x%/1", "x_/2", "xa/3", "xab/4"}},
		{"a", []string{"x%/1", "x_/2", "xa/3", "xab/4"}},
		{"x_", []string{"a/b", "a/b-c", "a/b/c", "a/b/c/d", "a/b0", "a/bc", "a/x", "x%/1", "xa/3", "xab/4"}},
		{"x%", []string{"a/b", "a/b-c", "a/b/c", "a/b/c/d", "a/b0", "a/bc", "a/x", "x_/2", "xa/3", "xab/4"}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			ctx := testContext(t)
			// Each case starts from the same keys: clear the key space
			// through its top-level entries, then store them again.
			top, err := s.ListBlobs(ctx, "", false)
			must(t, "list the top level", err)
			for _, k := range top {
				must(t, "clear "+k, s.DeleteBlob(ctx, k))
			}
			putBlobs(t, s, keys...)
			must(t, "delete "+tt.key, s.DeleteBlob(ctx, tt.key))
			if got := blobKeys(t, s); !slices.Equal(got, tt.want) {
				t.Errorf("after DeleteBlob(%q) the keys are\n%q, want\n%q", tt.key, got, tt.want)
			}
			wantErr(t, "delete "+tt.key+" again", s.DeleteBlob(ctx, tt.key), store.ErrNotFound)
		})
	}
	ctx := testContext(t)
	for _, key := range []string{"missing", "a/b/c/d/e", "x"} {
		wantErr(t, fmt.Sprintf("DeleteBlob(%q)", key), s.DeleteBlob(ctx, key), store.ErrNotFound)
	}
	// An empty key is refused: it names no blob, and read as a directory it
	// would be the whole key space.
	before := blobKeys(t, s)
	if err := s.DeleteBlob(ctx, ""); err == nil {
		t.Error(`DeleteBlob("") succeeded`)
	}
	if got := blobKeys(t, s); !slices.Equal(got, before) {
		t.Errorf(`after DeleteBlob("") the keys are %q, want %q untouched`, got, before)
	}
}

func testBlobList(t *testing.T, s store.Store) {
	ctx := testContext(t)
	putBlobs(t, s, "a/b/c", "a/b/d", "a/e", "a/b-c", "a/bc/x", "ab", "x%/1", "x_/2", "xa/3", "xab/4", "z")
	tests := []struct {
		prefix    string
		recursive bool
		want      []string
	}{
		{"a", false, []string{"a/b", "a/b-c", "a/bc", "a/e"}},
		{"a/", false, []string{"a/b", "a/b-c", "a/bc", "a/e"}},
		{"a", true, []string{"a/b-c", "a/b/c", "a/b/d", "a/bc/x", "a/e"}},
		{"a/", true, []string{"a/b-c", "a/b/c", "a/b/d", "a/bc/x", "a/e"}},
		{"a/b", false, []string{"a/b/c", "a/b/d"}},
		{"a/b", true, []string{"a/b/c", "a/b/d"}},
		{"a/bc", false, []string{"a/bc/x"}},
		{"", false, []string{"a", "ab", "x%", "x_", "xa", "xab", "z"}},
		{"", true, []string{"a/b-c", "a/b/c", "a/b/d", "a/bc/x", "a/e", "ab", "x%/1", "x_/2", "xa/3", "xab/4", "z"}},
		{"x%", true, []string{"x%/1"}},
		{"x_", false, []string{"x_/2"}},
		{"xa", true, []string{"xa/3"}},
		// A key is not below itself, and "a/e" is a key, not a directory.
		{"z", true, nil},
		{"a/e", false, nil},
		{"missing", false, nil},
		{"a/b/c/d", true, nil},
	}
	for _, tt := range tests {
		got, err := s.ListBlobs(ctx, tt.prefix, tt.recursive)
		must(t, fmt.Sprintf("ListBlobs(%q, %t)", tt.prefix, tt.recursive), err)
		if !slices.Equal(got, tt.want) {
			t.Errorf("ListBlobs(%q, %t) = %q, want %q", tt.prefix, tt.recursive, got, tt.want)
		}
	}
}

func testLock(t *testing.T, s store.Store) {
	ctx := testContext(t)
	t0 := baseTime()
	steps := []struct {
		what          string
		owner         string
		now, expires  time.Time
		unlock        bool  // Unlock instead of TryLock
		want          bool  // TryLock's result
		wantUnlockErr error // Unlock's error
	}{
		{what: "take a free lock", owner: "gw-1", now: t0, expires: t0.Add(time.Minute), want: true},
		{what: "take it while gw-1 holds it", owner: "gw-2", now: t0.Add(time.Second), expires: t0.Add(2 * time.Minute)},
		{what: "take it again (extend)", owner: "gw-1", now: t0.Add(30 * time.Second), expires: t0.Add(2 * time.Minute), want: true},
		{what: "take it after the first expiry, before the extended one", owner: "gw-2", now: t0.Add(90 * time.Second), expires: t0.Add(3 * time.Minute)},
		{what: "take it the nanosecond before it expires", owner: "gw-2", now: t0.Add(2*time.Minute - 1), expires: t0.Add(3 * time.Minute)},
		{what: "take over the expired lock", owner: "gw-2", now: t0.Add(2 * time.Minute), expires: t0.Add(3 * time.Minute), want: true},
		{what: "take it back while gw-2 holds it", owner: "gw-1", now: t0.Add(2 * time.Minute), expires: t0.Add(4 * time.Minute)},
		{what: "unlock by a non-owner", owner: "gw-1", unlock: true, wantUnlockErr: store.ErrConflict},
		{what: "unlock by the owner", owner: "gw-2", unlock: true},
		{what: "unlock a free lock", owner: "gw-2", unlock: true, wantUnlockErr: store.ErrNotFound},
		{what: "take it after unlock", owner: "gw-1", now: t0.Add(2 * time.Minute), expires: t0.Add(4 * time.Minute), want: true},
		{what: "take it back after unlock", owner: "gw-2", now: t0.Add(2 * time.Minute), expires: t0.Add(4 * time.Minute)},
	}
	for _, st := range steps {
		if st.unlock {
			err := s.Unlock(ctx, "issue_cert_gw.example.com", st.owner)
			if st.wantUnlockErr == nil {
				must(t, st.what, err)
			} else {
				wantErr(t, st.what, err, st.wantUnlockErr)
			}
			continue
		}
		got, err := s.TryLock(ctx, "issue_cert_gw.example.com", st.owner, st.now, st.expires)
		must(t, st.what, err)
		if got != st.want {
			t.Fatalf("%s: TryLock by %s = %t, want %t", st.what, st.owner, got, st.want)
		}
	}
	// Locks are independent of each other and of blobs.
	ok, err := s.TryLock(ctx, "issue_cert_other", "gw-2", t0, t0.Add(time.Minute))
	must(t, "take another lock", err)
	if !ok {
		t.Fatal("TryLock of a second, free lock = false")
	}
	if keys := blobKeys(t, s); len(keys) != 0 {
		t.Errorf("locks show up as blobs: %q", keys)
	}
	wantErr(t, "unlock a lock never taken", s.Unlock(ctx, "never", "gw-1"), store.ErrNotFound)
}

// LockRace has racers goroutines, spread round-robin over stores (several
// stores on one database stand for several gateway replicas), try each of
// several locks at once as different owners: first locks nobody holds, then
// locks whose holder's expiry has passed. It fails t unless every lock has
// exactly one winner and the losers still cannot take it afterwards.
func LockRace(t *testing.T, stores ...store.Store) {
	t.Helper()
	if len(stores) == 0 {
		t.Fatal("LockRace: need stores")
	}
	const locks, racers = 10, 8
	ctx := testContext(t)
	t0 := baseTime()
	for i := range locks {
		ok, err := stores[0].TryLock(ctx, fmt.Sprintf("expired-%02d", i), "old", t0.Add(-time.Hour), t0)
		must(t, "take a lock to expire", err)
		if !ok {
			t.Fatalf("TryLock of free lock expired-%02d = false", i)
		}
	}
	for _, kind := range []string{"free", "expired"} {
		won := make([][]bool, locks)
		errs := make([][]error, locks)
		for i := range locks {
			won[i], errs[i] = make([]bool, racers), make([]error, racers)
		}
		name := func(i int) string { return fmt.Sprintf("%s-%02d", kind, i) }
		owner := func(j int) string { return fmt.Sprintf("racer-%d", j) }
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range locks {
			for j := range racers {
				s := stores[(i*racers+j)%len(stores)]
				wg.Go(func() {
					<-start
					won[i][j], errs[i][j] = s.TryLock(ctx, name(i), owner(j), t0, t0.Add(time.Minute))
				})
			}
		}
		close(start)
		// Every call is bounded by ctx's deadline, so Wait ends.
		wg.Wait()
		for i := range locks {
			winner := -1
			for j := range racers {
				switch err := errs[i][j]; {
				case err != nil:
					t.Errorf("lock %s: racer %d: %v", name(i), j, err)
				case won[i][j] && winner >= 0:
					t.Errorf("lock %s: racers %d and %d both took it", name(i), winner, j)
				case won[i][j]:
					winner = j
				}
			}
			if winner < 0 {
				t.Errorf("lock %s: none of %d racers took it", name(i), racers)
				continue
			}
			loser := (winner + 1) % racers
			ok, err := stores[len(stores)-1].TryLock(ctx, name(i), owner(loser), t0.Add(time.Second), t0.Add(time.Hour))
			if err != nil || ok {
				t.Errorf("lock %s: after the race, loser %d's TryLock = %t, %v; want false", name(i), loser, ok, err)
			}
			err = stores[0].Unlock(ctx, name(i), owner(loser))
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("lock %s: loser %d's Unlock = %v, want ErrConflict", name(i), loser, err)
			}
		}
	}
}
