package pgstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// jobChannel is the notification channel SubmitJob notifies, with the
// runner id as payload, and JobSignals listens on.
const jobChannel = "leash_jobs"

// signalBuffer is how far a subscriber may fall behind before it misses
// signals, as in sqlitestore.
const signalBuffer = 64

// Reconnection delays of a JobSignals relay whose connection dropped.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 10 * time.Second
)

// JobSignals delivers the runner id of every job submitted through any
// store on this database until ctx ends or the store closes; then the
// channel is closed. It holds a connection of its own, outside the pool,
// that LISTENs on the job channel; when it is subscribed, JobSignals
// returns, so a job submitted afterwards is signalled. If the connection
// drops, a new one is made with backoff, and signals sent in between are
// missed. Sends never block: a reader that is behind misses signals too.
func (s *Store) JobSignals(ctx context.Context) (<-chan string, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("job signals: %w", ErrClosed)
	}
	s.subs.Add(1)
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(s.closing, cancel)
	ch := make(chan string, signalBuffer)
	conn, err := s.listenConn(ctx)
	if err != nil {
		unhook()
		cancel()
		s.subs.Done()
		if ctx.Err() != nil {
			// The subscription ended before it began (the caller's ctx
			// or the store closing): an empty, closed channel, as from
			// sqlitestore, not an error.
			close(ch)
			return ch, nil
		}
		return nil, fmt.Errorf("job signals on %s: %w", s.name, err)
	}
	go func() {
		defer s.subs.Done()
		defer close(ch)
		defer cancel()
		defer unhook()
		s.relay(ctx, conn, ch)
	}()
	return ch, nil
}

// listenConn opens a connection of its own and subscribes it to
// jobChannel.
func (s *Store) listenConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.listen.Copy())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{jobChannel}.Sanitize()); err != nil {
		closeConn(conn)
		return nil, fmt.Errorf("listen: %w", err)
	}
	return conn, nil
}

// relay forwards the notifications conn receives to ch until ctx ends,
// replacing conn when it fails. A nil conn means "reconnect": one loop
// serves both, waiting out the backoff before each attempt.
func (s *Store) relay(ctx context.Context, conn *pgx.Conn, ch chan<- string) {
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	bo := backoff{min: reconnectMin, max: reconnectMax}
	for {
		if conn == nil {
			if bo.wait(ctx) != nil {
				return
			}
			c, err := s.listenConn(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("job signals: reconnect failed; will retry", "err", err)
				}
				continue
			}
			s.log.Info("job signals: listening again; jobs submitted meanwhile are found by the pollers' re-check")
			bo.reset()
			conn = c
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			closeConn(conn)
			conn = nil
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("job signals: lost the listening connection; reconnecting", "err", err)
			continue
		}
		select {
		case ch <- n.Payload:
		default:
		}
	}
}

// listenerAppName is the application_name of JobSignals' connections, so
// that an operator can tell them from the pool's in pg_stat_activity.
func listenerAppName(base string) string {
	return base + " job signals"
}

// closeConn closes conn, giving the polite Terminate message a moment.
func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// backoff waits exponentially longer after each failure, from min to max,
// with jitter over the upper half; reset starts over after a success.
type backoff struct {
	min, max time.Duration
	n        int
}

// wait sleeps for the next delay or until ctx ends, and returns ctx's
// error if it ended.
func (b *backoff) wait(ctx context.Context) error {
	d := b.min << min(b.n, 30)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.n++
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (b *backoff) reset() { b.n = 0 }
