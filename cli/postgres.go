package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/gateway/store/pgstore"
)

// openPostgres opens the PostgreSQL store; migrations run at open, safe
// when several gateways start at once.
func openPostgres(ctx context.Context, url string, log *slog.Logger) (store.Store, error) {
	if !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://") {
		return nil, usageError{fmt.Errorf("database url must start with postgres:// (got %q)", redactURL(url))}
	}
	st, err := pgstore.Open(ctx, url, pgstore.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", redactURL(url), err)
	}
	return st, nil
}

// redactURL hides a password in a database URL.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	if user, _, hasPw := strings.Cut(userinfo, ":"); hasPw {
		return scheme + "://" + user + ":***@" + host
	}
	return u
}
