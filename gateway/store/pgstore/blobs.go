package pgstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leashpki/leash/gateway/store"
)

// PutBlob creates or replaces key.
func (s *Store) PutBlob(ctx context.Context, r store.BlobRecord) error {
	if r.Key == "" {
		return fmt.Errorf("put blob: a key is required")
	}
	modified, err := encodeTime(r.Modified)
	if err != nil {
		return fmt.Errorf("put blob %s: %w", r.Key, err)
	}
	if _, err := s.pool.Exec(ctx, `
INSERT INTO blobs (key, value, modified) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, modified = EXCLUDED.modified`,
		r.Key, blob(r.Value), modified); err != nil {
		return fmt.Errorf("put blob %s: %w", r.Key, err)
	}
	return nil
}

// Blob returns key, or store.ErrNotFound.
func (s *Store) Blob(ctx context.Context, key string) (store.BlobRecord, error) {
	var r store.BlobRecord
	var modified *string
	err := s.pool.QueryRow(ctx, `SELECT key, value, modified FROM blobs WHERE key = $1`, key).
		Scan(&r.Key, &r.Value, &modified)
	if isNoRows(err) {
		return store.BlobRecord{}, fmt.Errorf("blob %s: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return store.BlobRecord{}, fmt.Errorf("blob %s: %w", key, err)
	}
	if r.Modified, err = decodeTime(modified); err != nil {
		return store.BlobRecord{}, fmt.Errorf("blob %s: %w", key, err)
	}
	return r, nil
}

// DeleteBlob deletes key and every key below it in one statement, or
// returns store.ErrNotFound when there was none.
func (s *Store) DeleteBlob(ctx context.Context, key string) error {
	if key == "" {
		return fmt.Errorf("delete blob: a key is required")
	}
	lo, hi := store.BlobRange(key)
	tag, err := s.pool.Exec(ctx, `DELETE FROM blobs WHERE key = $1 OR (key >= $2 AND key < $3)`, key, lo, hi)
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete blob %s: %w", key, store.ErrNotFound)
	}
	return nil
}

// ListBlobs lists the keys below prefix in byte order; see store.Blobs. A
// trailing slash on prefix changes nothing, and "" is the root.
func (s *Store) ListBlobs(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	dir := strings.TrimRight(prefix, "/")
	var args params
	query := `SELECT key FROM blobs`
	if dir != "" {
		lo, hi := store.BlobRange(dir)
		query += ` WHERE key >= ` + args.add(lo) + ` AND key < ` + args.add(hi)
	}
	rows, err := s.pool.Query(ctx, query+` ORDER BY key`, args...)
	if err != nil {
		return nil, fmt.Errorf("list blobs below %q: %w", prefix, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list blobs below %q: %w", prefix, err)
	}
	if !recursive {
		keys = store.BlobChildren(dir, keys)
	}
	return keys, nil
}

// TryLock takes or extends lock name for owner in one statement: a missing
// row is inserted, and an existing one is changed only when owner already
// holds it or its expiry is not after now. Of concurrent inserts of one
// name, PostgreSQL lets one through and sends the others to DO UPDATE once
// it commits; DO UPDATE locks the row and evaluates its WHERE on the newest
// version, so a lock taken a moment ago is not taken again and exactly one
// call returns a row.
func (s *Store) TryLock(ctx context.Context, name, owner string, now, expires time.Time) (bool, error) {
	if name == "" || owner == "" {
		return false, fmt.Errorf("try lock: name and owner are required")
	}
	var te timeEncoder
	nowS := te.encode("now", now)
	expiresS := te.encode("expires", expires)
	if te.err != nil {
		return false, fmt.Errorf("try lock %s: %w", name, te.err)
	}
	var taken bool
	err := s.pool.QueryRow(ctx, `
INSERT INTO locks (name, owner, expires) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires = EXCLUDED.expires
WHERE locks.owner = EXCLUDED.owner OR locks.expires <= $4
RETURNING true`, name, owner, expiresS, nowS).Scan(&taken)
	if isNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("try lock %s: %w", name, err)
	}
	return taken, nil
}

// Unlock releases name if owner holds it, whatever its expiry. One
// statement deletes the row and reads who held it before.
func (s *Store) Unlock(ctx context.Context, name, owner string) error {
	var released bool
	var holder *string
	err := s.pool.QueryRow(ctx, `
WITH released AS (DELETE FROM locks WHERE name = $1 AND owner = $2 RETURNING name)
SELECT EXISTS (SELECT 1 FROM released), (SELECT owner FROM locks WHERE name = $1)`, name, owner).
		Scan(&released, &holder)
	switch {
	case err != nil:
		return fmt.Errorf("unlock %s for %s: %w", name, owner, err)
	case released:
		return nil
	case holder == nil:
		return fmt.Errorf("unlock %s for %s: %w", name, owner, store.ErrNotFound)
	default:
		return fmt.Errorf("unlock %s for %s: %w: held by %s", name, owner, store.ErrConflict, *holder)
	}
}
