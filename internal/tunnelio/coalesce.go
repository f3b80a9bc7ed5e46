// Package tunnelio holds the byte plumbing both ends of a Leash tunnel
// share: the yamux configuration, the Coalescer under yamux, the adaptive
// copy buffers and Splice that carry a stream, and Upgrade and Buffered
// for byte streams opened by an HTTP Upgrade.
//
// yamux writes every data frame as two writes, its 12-byte header and then
// its body. Over TLS that is two records and two system calls per frame;
// profiles of the tunnel put half its CPU in system calls. Coalescer joins
// a data frame's header with its body into one write; with a GatherConn
// under the TLS connection, a large frame's records go out in one write
// too.
package tunnelio

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
)

// yamux frame layout: version(1) type(1) flags(2) stream(4) length(4).
const (
	headerSize = 12
	typeData   = 0
	// maxCoalesce bounds the bodies joined with their header: a big frame
	// costs the same either way, and the buffer each connection keeps
	// stays small.
	maxCoalesce = 32 << 10
)

// ErrFraming means a data header was not followed by a body of its
// length; the connection is closed rather than let a corrupt stream go on.
var ErrFraming = errors.New("tunnel framing error: data header not followed by its body")

// Coalescer wraps the connection yamux writes to.
type Coalescer struct {
	io.ReadWriteCloser

	mu      sync.Mutex
	pending []byte // a data frame header waiting for its body
	big     bool   // the pending header's body is large: gather it
	buf     []byte
	gather  *GatherConn
}

// SetGather has data frames larger than the coalescing limit written
// through g in one system call: g is the connection under the TLS
// connection the Coalescer writes to (see GatherOf). Call it before the
// first write.
func (c *Coalescer) SetGather(g *GatherConn) { c.gather = g }

// NewCoalescer wraps conn.
func NewCoalescer(conn io.ReadWriteCloser) *Coalescer {
	return &Coalescer{ReadWriteCloser: conn, pending: make([]byte, 0, headerSize)}
}

// Write passes writes on, holding back a data frame's header until its
// body comes, then writing both at once: into one buffer for a small
// body, under a GatherConn hold for a large one.
func (c *Coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) > 0 {
		want := binary.BigEndian.Uint32(c.pending[8:12])
		if uint32(len(p)) != want {
			_ = c.Close()
			return 0, ErrFraming
		}
		if c.big {
			c.big = false
			c.gather.Hold()
			_, err := c.ReadWriteCloser.Write(c.pending)
			c.pending = c.pending[:0]
			var n int
			if err == nil {
				n, err = c.ReadWriteCloser.Write(p)
			}
			if ferr := c.gather.Flush(); err == nil {
				err = ferr
			}
			return n, err
		}
		c.buf = append(append(c.buf[:0], c.pending...), p...)
		c.pending = c.pending[:0]
		n, err := c.ReadWriteCloser.Write(c.buf)
		return max(n-headerSize, 0), err
	}
	if len(p) == headerSize && p[1] == typeData {
		if n := binary.BigEndian.Uint32(p[8:12]); n > 0 && n <= maxCoalesce {
			c.pending = append(c.pending, p...)
			return len(p), nil
		} else if n > 0 && c.gather != nil {
			c.pending = append(c.pending, p...)
			c.big = true
			return len(p), nil
		}
	}
	return c.ReadWriteCloser.Write(p)
}
