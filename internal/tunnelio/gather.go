package tunnelio

import (
	"crypto/tls"
	"net"
	"sync"
)

// gatherBuffer fits one 256 KiB frame (the big copy buffer) as TLS
// records: 16 records of 16 KiB with their headers and tags.
const gatherBuffer = bigBuffer + 16<<10

// Gatherer makes GatherConns, which share its buffers. A tunnel's large
// yamux frame becomes 16 or more TLS records; tls.Conn writes each with a
// system call of its own, and on loopback or a fast link those calls and
// the small segments they make cost more CPU than the encryption. Under
// the TLS connection a GatherConn collects the records of one frame and
// writes them at once (see Coalescer.SetGather). The zero value is ready.
//
// It also pools the Coalescers' queue buffers (see SetGather).
type Gatherer struct{ bufs, queues sync.Pool }

// Conn wraps c.
func (gr *Gatherer) Conn(c net.Conn) *GatherConn { return &GatherConn{Conn: c, gr: gr} }

// Listener wraps every connection ln accepts.
func (gr *Gatherer) Listener(ln net.Listener) net.Listener { return gatherListener{ln, gr} }

type gatherListener struct {
	net.Listener
	gr *Gatherer
}

func (l gatherListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.gr.Conn(c), nil
}

// GatherConn is a connection whose writes between Hold and Flush are
// collected and written with one system call. Outside a hold it passes
// writes straight through. The buffer is the Gatherer's while no hold is
// on, so an idle connection keeps none.
type GatherConn struct {
	net.Conn
	gr      *Gatherer
	mu      sync.Mutex
	holding bool
	buf     *[]byte
}

// Write writes p, or keeps a copy of it while held.
func (g *GatherConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	if g.holding {
		*g.buf = append(*g.buf, p...)
		g.mu.Unlock()
		return len(p), nil
	}
	g.mu.Unlock()
	return g.Conn.Write(p)
}

// CloseWrite flushes and half-closes the connection underneath (see
// CloseWrite), so that wrapping hides nothing from a caller that
// half-closes: net/http's server, or a byte stream upgraded on a plain
// listener.
func (g *GatherConn) CloseWrite() error {
	if err := g.Flush(); err != nil {
		return err
	}
	CloseWrite(g.Conn)
	return nil
}

// Hold keeps writes until Flush.
func (g *GatherConn) Hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holding = true
	if g.buf == nil {
		if b, ok := g.gr.bufs.Get().(*[]byte); ok {
			g.buf = b
		} else {
			b := make([]byte, 0, gatherBuffer)
			g.buf = &b
		}
	}
}

// Flush writes what was kept, ends the hold and gives the buffer back.
func (g *GatherConn) Flush() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holding = false
	if g.buf == nil {
		return nil
	}
	var err error
	if len(*g.buf) > 0 {
		_, err = g.Conn.Write(*g.buf)
	}
	if cap(*g.buf) <= 4*gatherBuffer { // an outsized one is left to the GC
		*g.buf = (*g.buf)[:0]
		g.gr.bufs.Put(g.buf)
	}
	g.buf = nil
	return err
}

// GatherOf returns the GatherConn under c (through TLS), or nil.
func GatherOf(c net.Conn) *GatherConn {
	for {
		switch v := c.(type) {
		case *GatherConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// queueBuffer returns an empty buffer that fits a Coalescer's longest
// queue.
func (gr *Gatherer) queueBuffer() *[]byte {
	if b, ok := gr.queues.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, queueBuffer)
	return &b
}

// putQueueBuffer gives pb back, holding used: the queue it became, which
// has its backing array unless it outgrew it.
func (gr *Gatherer) putQueueBuffer(pb *[]byte, used []byte) {
	if cap(used) <= 2*queueBuffer { // an outsized one is left to the GC
		*pb = used[:0]
		gr.queues.Put(pb)
	}
}
