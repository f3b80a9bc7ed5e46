package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/leashpki/leash/gateway/store"
)

// blobStorage is certmagic.Storage on the store's Blobs: certificates,
// keys and their metadata live in the database every replica shares, and
// certmagic's locks are the store's expiring locks.
type blobStorage struct {
	st    store.Blobs
	owner string // this process: replica id + random, so restarts never inherit a lock
	now   func() time.Time
}

var _ certmagic.Storage = (*blobStorage)(nil)

// lockTTL bounds how long a crashed replica can hold a certificate lock.
const lockTTL = 2 * time.Minute

func newBlobStorage(st store.Blobs, replica string, now func() time.Time) *blobStorage {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &blobStorage{st: st, owner: replica + "-" + hex.EncodeToString(b), now: now}
}

// Lock waits until it holds name.
func (b *blobStorage) Lock(ctx context.Context, name string) error {
	for wait := 50 * time.Millisecond; ; wait = min(wait*2, time.Second) {
		now := b.now()
		ok, err := b.st.TryLock(ctx, name, b.owner, now, now.Add(lockTTL))
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Unlock releases name.
func (b *blobStorage) Unlock(ctx context.Context, name string) error {
	return b.st.Unlock(ctx, name, b.owner)
}

// Store writes key.
func (b *blobStorage) Store(ctx context.Context, key string, value []byte) error {
	return b.st.PutBlob(ctx, store.BlobRecord{Key: key, Value: value, Modified: b.now().UTC()})
}

// Load reads key; a missing key is fs.ErrNotExist, as certmagic expects.
func (b *blobStorage) Load(ctx context.Context, key string) ([]byte, error) {
	r, err := b.st.Blob(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fs.ErrNotExist
	}
	if err != nil {
		return nil, err
	}
	return r.Value, nil
}

// Delete removes key and everything below it.
func (b *blobStorage) Delete(ctx context.Context, key string) error {
	err := b.st.DeleteBlob(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return fs.ErrNotExist
	}
	return err
}

// Exists reports whether key is a value or a "directory" of values.
func (b *blobStorage) Exists(ctx context.Context, key string) bool {
	_, err := b.Stat(ctx, key)
	return err == nil
}

// List lists the keys below path.
func (b *blobStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	keys, err := b.st.ListBlobs(ctx, path, recursive)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fs.ErrNotExist
	}
	return keys, nil
}

// Stat describes key.
func (b *blobStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	r, err := b.st.Blob(ctx, key)
	switch {
	case err == nil:
		return certmagic.KeyInfo{Key: key, Modified: r.Modified, Size: int64(len(r.Value)), IsTerminal: true}, nil
	case !errors.Is(err, store.ErrNotFound):
		return certmagic.KeyInfo{}, err
	}
	keys, err := b.st.ListBlobs(ctx, key, false)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(keys) == 0 {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}
