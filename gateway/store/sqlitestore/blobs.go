package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

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
	value := r.Value
	if value == nil {
		value = []byte{} // the column is NOT NULL
	}
	if _, err := s.db.ExecContext(ctx, `
INSERT INTO blobs (key, value, modified) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, modified = excluded.modified`,
		r.Key, value, modified); err != nil {
		return fmt.Errorf("put blob %s: %w", r.Key, err)
	}
	return nil
}

// Blob returns key, or store.ErrNotFound.
func (s *Store) Blob(ctx context.Context, key string) (store.BlobRecord, error) {
	var r store.BlobRecord
	var modified sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT key, value, modified FROM blobs WHERE key = ?`, key).
		Scan(&r.Key, &r.Value, &modified)
	if errors.Is(err, sql.ErrNoRows) {
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
	res, err := s.db.ExecContext(ctx, `DELETE FROM blobs WHERE key = ? OR (key >= ? AND key < ?)`, key, lo, hi)
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	n, err := affected(res)
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	if n == 0 {
		return fmt.Errorf("delete blob %s: %w", key, store.ErrNotFound)
	}
	return nil
}

// ListBlobs lists the keys below prefix in byte order; see store.Blobs. A
// trailing slash on prefix changes nothing, and "" is the root.
func (s *Store) ListBlobs(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	dir := strings.TrimRight(prefix, "/")
	query, args := `SELECT key FROM blobs ORDER BY key`, []any(nil)
	if dir != "" {
		lo, hi := store.BlobRange(dir)
		query, args = `SELECT key FROM blobs WHERE key >= ? AND key < ? ORDER BY key`, []any{lo, hi}
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list blobs below %q: %w", prefix, err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("list blobs below %q: %w", prefix, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list blobs below %q: %w", prefix, err)
	}
	if !recursive {
		keys = store.BlobChildren(dir, keys)
	}
	return keys, nil
}

// TryLock takes or extends lock name for owner in one upsert: a missing
// row is inserted, and an existing one is changed only when owner already
// holds it or its expiry is not after now. SQLite runs one writer at a
// time, so of concurrent calls for a free lock exactly one changes a row.
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
	res, err := s.db.ExecContext(ctx, `
INSERT INTO locks (name, owner, expires) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires = excluded.expires
WHERE locks.owner = excluded.owner OR locks.expires <= ?`, name, owner, expiresS, nowS)
	if err != nil {
		return false, fmt.Errorf("try lock %s: %w", name, err)
	}
	n, err := affected(res)
	if err != nil {
		return false, fmt.Errorf("try lock %s: %w", name, err)
	}
	return n == 1, nil
}

// Unlock releases name if owner holds it, whatever its expiry.
func (s *Store) Unlock(ctx context.Context, name, owner string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM locks WHERE name = ? AND owner = ?`, name, owner)
		if err != nil {
			return err
		}
		if n, err := affected(res); err != nil || n > 0 {
			return err
		}
		var holder string
		err = tx.QueryRowContext(ctx, `SELECT owner FROM locks WHERE name = ?`, name).Scan(&holder)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: held by %s", store.ErrConflict, holder)
	})
	if err != nil {
		return fmt.Errorf("unlock %s for %s: %w", name, owner, err)
	}
	return nil
}
