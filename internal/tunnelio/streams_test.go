package tunnelio

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// stuckClose is a connection whose Close waits for release. Under a yamux
// session it holds Session.Close between closing the shutdown channel
// and marking the streams closed: where a waiting Read or Write spins.
type stuckClose struct {
	net.Conn
	release chan struct{}
}

func (c *stuckClose) Close() error {
	<-c.release
	return c.Conn.Close()
}

// plainConn is a pipe end as it is, for pipeSessions.
func plainConn(c net.Conn) io.ReadWriteCloser { return c }

// acceptPair opens n streams from client and returns the server's side
// of each, tracked by ss.
func acceptPair(t *testing.T, client, server *yamux.Session, ss *Streams, n int) []*Stream {
	t.Helper()
	var out []*Stream
	for range n {
		if _, err := client.OpenStream(); err != nil {
			t.Fatal(err)
		}
		st, err := server.AcceptStream()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ss.Add(st))
	}
	return out
}

// TestStreamsEndWakesWaitingCalls: while a session is closing, a Read
// waiting for data and a Write waiting for window would loop until the
// connection's Close returns. End ends them at once, with an error. The
// test fails (after 10 s) without End.
func TestStreamsEndWakesWaitingCalls(t *testing.T) {
	release := make(chan struct{})
	client, server := pipeSessions(t, plainConn, func(c net.Conn) io.ReadWriteCloser { return &stuckClose{Conn: c, release: release} })
	defer func() { _ = client.Close() }()
	var ss Streams
	s := acceptPair(t, client, server, &ss, 2)
	reader, writer := s[0], s[1]

	// The peer's window for the stream (256 KiB) is used up: the peer
	// never reads. The next write waits for window.
	if _, err := writer.Write(make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 2)
	go func() {
		_, err := reader.Read(make([]byte, 1))
		results <- err
	}()
	go func() {
		_, err := writer.Write([]byte{1})
		results <- err
	}()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		_ = server.Close()
	}()
	<-server.CloseChan()
	ss.End()
	for range 2 {
		select {
		case err := <-results:
			if !errors.Is(err, ErrTunnelClosed) {
				t.Errorf("a waiting call ended with %v, want %v", err, ErrTunnelClosed)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiting Read or Write did not end after End while the session closed")
		}
	}
	close(release)
	<-closed
}

// TestStreamsTracking: a stream is tracked until Close (CloseWrite is a
// half-close and keeps it), and once the set has ended every stream, old
// or new, keeps a deadline in the past whatever its user sets.
func TestStreamsTracking(t *testing.T) {
	client, server := pipeSessions(t, plainConn, plainConn)
	defer func() { _ = client.Close(); _ = server.Close() }()
	var ss Streams
	s := acceptPair(t, client, server, &ss, 2)
	if n := ss.Len(); n != 2 {
		t.Fatalf("%d streams tracked, want 2", n)
	}
	_ = s[0].CloseWrite()
	if n := ss.Len(); n != 2 {
		t.Fatalf("after a half-close %d streams tracked, want 2", n)
	}
	_ = s[0].Close()
	_ = s[0].Close()
	if n := ss.Len(); n != 1 {
		t.Fatalf("after Close %d streams tracked, want 1", n)
	}

	ss.End()
	late := acceptPair(t, client, server, &ss, 1)[0]
	for _, st := range []*Stream{s[1], late} {
		_ = st.SetDeadline(time.Time{})
		_ = st.SetReadDeadline(time.Now().Add(time.Hour))
		if _, err := st.Read(make([]byte, 1)); !errors.Is(err, ErrTunnelClosed) {
			t.Errorf("a read after End: %v, want %v", err, ErrTunnelClosed)
		}
	}
}
