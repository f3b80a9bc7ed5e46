package tunnelio

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Streams is the set of one yamux session's streams in use, so that they
// can be woken when the session ends. The zero value is ready.
//
// yamux v0.1.2 closes a session's shutdown channel first, and marks its
// streams closed only once the connection is closed and its reader has
// stopped (Session.Close). In between, a stream's Read or Write that waits
// loops without blocking: the closed channel wakes it, the stream still
// looks open, it waits again. Coalescer.Close bounds that time; End ends
// the loops at once. Call it as soon as the session's CloseChan is closed,
// or before closing the session: it sets a deadline in the past on every
// stream in use, so that those calls end, with ErrTunnelClosed.
type Streams struct {
	ended atomic.Bool
	mu    sync.Mutex
	live  map[*Stream]struct{}
}

// Stream is a yamux stream in use, tracked by its Streams until Close.
type Stream struct {
	*yamux.Stream
	set    *Streams
	closed sync.Once
}

// ErrTunnelClosed is what a stream's Read and Write return once its
// session has ended (see Streams.End), in place of yamux's timeout.
var ErrTunnelClosed = errors.New("tunnel closed")

// longAgo is a deadline in the past: it ends waiting calls now.
func longAgo() time.Time { return time.Unix(1, 0) }

// Add tracks st until its Stream's Close. After End it gets a deadline in
// the past at once.
func (ss *Streams) Add(st *yamux.Stream) *Stream {
	s := &Stream{Stream: st, set: ss}
	ss.mu.Lock()
	if ss.live == nil {
		ss.live = map[*Stream]struct{}{}
	}
	ss.live[s] = struct{}{}
	ss.mu.Unlock()
	s.keepEnded()
	return s
}

// End wakes every stream in use and every one added later: their
// deadlines are in the past from now on.
func (ss *Streams) End() {
	ss.ended.Store(true)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for s := range ss.live {
		_ = s.Stream.SetDeadline(longAgo())
	}
}

// Len is the number of streams in use.
func (ss *Streams) Len() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.live)
}

// keepEnded puts the deadline back in the past once the set has ended. A
// deadline set concurrently with End is either seen by End's pass over
// the streams or followed by this check.
func (s *Stream) keepEnded() {
	if s.set.ended.Load() {
		_ = s.Stream.SetDeadline(longAgo())
	}
}

// Read reads the stream.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	return n, s.explain(err)
}

// Write writes to the stream.
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	return n, s.explain(err)
}

// explain turns the timeout that End causes into ErrTunnelClosed.
func (s *Stream) explain(err error) error {
	if err != nil && errors.Is(err, yamux.ErrTimeout) && s.set.ended.Load() {
		return ErrTunnelClosed
	}
	return err
}

// SetDeadline sets the stream's deadlines, unless its session has ended.
func (s *Stream) SetDeadline(t time.Time) error {
	err := s.Stream.SetDeadline(t)
	s.keepEnded()
	return err
}

// SetReadDeadline sets the stream's read deadline, unless its session
// has ended.
func (s *Stream) SetReadDeadline(t time.Time) error {
	err := s.Stream.SetReadDeadline(t)
	s.keepEnded()
	return err
}

// SetWriteDeadline sets the stream's write deadline, unless its session
// has ended.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	err := s.Stream.SetWriteDeadline(t)
	s.keepEnded()
	return err
}

// CloseWrite sends FIN; the stream goes on reading (yamux's Close).
func (s *Stream) CloseWrite() error { return s.Stream.Close() }

// Close ends the use of the stream: it sends FIN and stops tracking it.
func (s *Stream) Close() error {
	s.closed.Do(func() {
		s.set.mu.Lock()
		delete(s.set.live, s)
		s.set.mu.Unlock()
	})
	return s.Stream.Close()
}
