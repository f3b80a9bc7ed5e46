package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/leashpki/leash/gateway/store"
)

// connTracker knows every live client-authenticated connection by the
// serial of the certificate it presented, so that revocation and expiry
// can close them.
type connTracker struct {
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	bySerial map[string]map[net.Conn]struct{}
	info     map[net.Conn]*trackedConn
	revoked  map[string]int // serials seen revoked: connections closed for each
}

type trackedConn struct {
	serial string
	expiry *time.Timer
}

func newConnTracker(log *slog.Logger, now func() time.Time) *connTracker {
	return &connTracker{log: log, now: now, bySerial: map[string]map[net.Conn]struct{}{},
		info: map[net.Conn]*trackedConn{}, revoked: map[string]int{}}
}

// connState is the http.Server hook. A TLS connection's handshake is done
// by the time it first turns active; that is when it is tracked.
func (t *connTracker) connState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateActive:
		t.track(c)
	case http.StateClosed:
		t.untrack(c)
		// A hijacked connection (a tunnel, a service stream) stays tracked,
		// so that revocation and expiry still close it; its handler
		// untracks it when it is done.
	}
}

func (t *connTracker) track(c net.Conn) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.info[c]; seen {
		return
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return
	}
	leaf := cs.PeerCertificates[0]
	serial := leaf.SerialNumber.String()
	if _, gone := t.revoked[serial]; gone {
		// Revoked between the handshake's check and now.
		t.revoked[serial]++
		go c.Close()
		return
	}
	info := &trackedConn{serial: serial}
	info.expiry = time.AfterFunc(leaf.NotAfter.Sub(t.now()), func() {
		t.log.Info("closing connection: client certificate expired", "serial", serial, "remote", c.RemoteAddr().String())
		_ = c.Close()
	})
	t.info[c] = info
	if t.bySerial[serial] == nil {
		t.bySerial[serial] = map[net.Conn]struct{}{}
	}
	t.bySerial[serial][c] = struct{}{}
}

func (t *connTracker) untrack(c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.untrackLocked(c)
}

func (t *connTracker) untrackLocked(c net.Conn) {
	info, ok := t.info[c]
	if !ok {
		return
	}
	info.expiry.Stop()
	delete(t.info, c)
	delete(t.bySerial[info.serial], c)
	if len(t.bySerial[info.serial]) == 0 {
		delete(t.bySerial, info.serial)
	}
}

// closeSerial closes every live connection of serial and remembers the
// serial as revoked. It returns how many connections have been closed
// because serial is revoked, this call's and earlier ones': the
// revocation watch may find a revocation in the store, and close its
// connections, between the revoking handler's store write and its own
// closeSerial.
func (t *connTracker) closeSerial(serial, why string) int {
	t.mu.Lock()
	var conns []net.Conn
	for c := range t.bySerial[serial] {
		conns = append(conns, c)
	}
	for _, c := range conns {
		t.untrackLocked(c) // now, so that a second call does not count it again
	}
	t.revoked[serial] += len(conns)
	closed := t.revoked[serial]
	t.mu.Unlock()
	for _, c := range conns {
		t.log.Info("closing connection", "reason", why, "serial", serial, "remote", c.RemoteAddr().String())
		_ = c.Close()
	}
	return closed
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	var conns []net.Conn
	for c, info := range t.info {
		info.expiry.Stop()
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// loadRevoked remembers the revocations already in the store: their
// handshakes are refused, so nothing needs closing.
func (t *connTracker) loadRevoked(ctx context.Context, st store.Store) error {
	revs, err := st.Revocations(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range revs {
		if _, known := t.revoked[r.Serial]; !known {
			t.revoked[r.Serial] = 0 // its handshakes are refused: nothing to close
		}
	}
	return nil
}

// watchRevocations polls the store for revocations made elsewhere (the
// CLI, another replica) and closes the connections they name.
func (t *connTracker) watchRevocations(ctx context.Context, st store.Store, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		revs, err := st.Revocations(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			t.log.Warn("revocation watch: store read failed", "err", err)
			continue
		}
		for _, r := range revs {
			t.mu.Lock()
			_, known := t.revoked[r.Serial]
			t.mu.Unlock()
			if !known {
				t.closeSerial(r.Serial, "revoked")
			}
		}
	}
}

// hijack takes over the connection of w's request. The caller calls done
// once it is finished with the connection: Run waits for that before it
// returns (http.Server.Shutdown does not wait for hijacked connections),
// so that nothing a hijacked handler does last, such as a tunnel's
// closing audit row, happens after the gateway stopped.
func (s *Server) hijack(w http.ResponseWriter) (conn net.Conn, rw *bufio.ReadWriter, done func(), err error) {
	// Added while the request is still the server's, so before Shutdown
	// returns and waitHijacked waits.
	s.hijacked.Add(1)
	conn, rw, err = http.NewResponseController(w).Hijack()
	if err != nil {
		s.hijacked.Done()
		return nil, nil, nil, err
	}
	return conn, rw, s.hijacked.Done, nil
}

// waitHijacked waits for the handlers of hijacked connections, whose
// connections closeAll has closed, until ctx ends.
func (s *Server) waitHijacked(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.hijacked.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("handlers of hijacked connections still running: %w", ctx.Err())
	}
}
