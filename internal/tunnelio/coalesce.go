// Package tunnelio holds the byte plumbing both ends of a Leash tunnel
// share: the yamux configuration, the Coalescer under yamux, the adaptive
// copy buffers and Splice that carry a stream, and Upgrade and Buffered
// for byte streams opened by an HTTP Upgrade.
//
// yamux writes every frame from one send loop, a data frame as two
// writes (its 12-byte header, then its body), and each stream waits until
// the loop has written its frame. Over TLS every write is a record and a
// system call; profiles of the tunnel put half its CPU in system calls.
// The Coalescer under yamux joins a data frame's header with its body and
// writes small frames behind: it queues them and a goroutine of its own,
// started when frames queue and gone when the queue is empty, writes
// whatever has queued in one write. Frames queued while a write is
// in progress (other streams' frames, a new stream's SYN and first data)
// go out together. With a GatherConn under the TLS connection, a large
// frame's records go out in one write too.
package tunnelio

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"
)

// yamux frame layout: version(1) type(1) flags(2) stream(4) length(4).
const (
	headerSize = 12
	typeData   = 0
	// maxCoalesce bounds the bodies joined with their header and queued:
	// a larger frame is written at once, without a copy.
	maxCoalesce = 32 << 10
	// maxQueue bounds what waits for the writer: a Write that finds more
	// queued waits for it, so a slow connection holds yamux back as
	// before.
	maxQueue = 64 << 10
	// keepBuffer bounds the buffer a Coalescer keeps between writes: a
	// burst's bigger buffer is left to the collector, so that thousands
	// of idle tunnels do not each hold one.
	keepBuffer = 16 << 10
	// queueBuffer fits the longest queue: maxQueue, plus the frame (a
	// header and up to maxCoalesce) whose Write then waits.
	queueBuffer = maxQueue + maxCoalesce + 2*headerSize
	// closeFlush bounds Close: how long it waits for queued frames to be
	// written (a live peer takes them at once; a stuck one does not), and
	// for the TLS connection's close, whose close_notify alert would
	// otherwise wait up to 5 s for a peer that does not read.
	closeFlush = 500 * time.Millisecond
)

// ErrFraming means a data header was not followed by a body of its
// length; the connection is closed rather than let a corrupt stream go on.
var ErrFraming = errors.New("tunnel framing error: data header not followed by its body")

// errCoalescerClosed is what writes return after Close.
var errCoalescerClosed = errors.New("tunnel connection closed")

// Coalescer wraps the connection yamux writes to. Writes are meant to
// come from one goroutine (yamux's send loop). An idle Coalescer holds no
// goroutine; Close waits for a running writer.
type Coalescer struct {
	conn   io.ReadWriteCloser
	gather *GatherConn

	mu      sync.Mutex
	drained sync.Cond // the writer took the queue, or failed
	pending []byte    // a data frame header waiting for its body
	big     bool      // the pending header's body is large
	queue   []byte    // frames waiting for the writer
	pooled  *[]byte   // the pool's buffer that queue is in, if it is
	spare   []byte    // the writer's last buffer, for the next queue
	writing bool      // a write is in progress (without mu)
	err     error     // the first write error, or errCoalescerClosed
	late    bool      // Close stopped waiting for the queue
	running bool      // a writer goroutine is running
	gone    bool      // a read failed: the peer closed or the connection broke

	writers sync.WaitGroup
}

// SetGather has data frames larger than the coalescing limit written
// through g in one system call: g is the connection under the TLS
// connection the Coalescer writes to (see GatherOf). A queue that
// outgrows a small buffer then moves into one of g's Gatherer's pooled
// queue buffers, so that bursts do not allocate. Call it before the
// first write.
func (c *Coalescer) SetGather(g *GatherConn) { c.gather = g }

// NewCoalescer wraps conn.
func NewCoalescer(conn io.ReadWriteCloser) *Coalescer {
	c := &Coalescer{conn: conn, pending: make([]byte, 0, headerSize)}
	c.drained.L = &c.mu
	return c
}

// Read reads the connection. A failed read marks the peer gone.
func (c *Coalescer) Read(p []byte) (int, error) {
	n, err := c.conn.Read(p)
	if err != nil {
		c.mu.Lock()
		c.gone = true
		c.mu.Unlock()
	}
	return n, err
}

// Close writes what is queued, closes the connection, which also ends a
// write in progress, and waits for the writer to stop. It returns within
// closeFlush: then it closes the connection under TLS (the GatherConn),
// which ends a flush or a close_notify that does not progress. Once a
// read has failed nothing is flushed: the peer is gone.
//
// yamux v0.1.2 closes its shutdown channel before it closes the
// connection, and marks its streams closed only after: in between, a
// stream's blocked Read or Write loops without blocking. Close being
// bounded bounds that spin; Streams.End ends it at once.
func (c *Coalescer) Close() error {
	gaveUp := make(chan struct{})
	late := time.AfterFunc(closeFlush, func() {
		defer close(gaveUp)
		c.mu.Lock()
		c.late = true
		c.drained.Broadcast()
		c.mu.Unlock()
		c.closeUnder()
	})
	defer func() {
		if !late.Stop() {
			<-gaveUp
		}
	}()
	c.mu.Lock()
	for (len(c.queue) > 0 || c.writing) && c.err == nil && !c.late && !c.gone {
		c.kickLocked()
		c.drained.Wait()
	}
	gone := c.gone
	if c.err == nil {
		c.err = errCoalescerClosed
	}
	c.drained.Broadcast()
	c.mu.Unlock()
	if gone {
		c.closeUnder()
	}
	err := c.conn.Close()
	c.writers.Wait()
	return err
}

// closeUnder closes the connection under TLS, if the Coalescer knows it.
func (c *Coalescer) closeUnder() {
	if c.gather != nil {
		_ = c.gather.Conn.Close()
	}
}

// Write queues a frame for the writer, holding back a data frame's header
// until its body comes. A large body is written at once, with its header,
// after what was queued before it (under a GatherConn hold when there is
// one). A write error of the writer is returned by the next Write.
func (c *Coalescer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.pending) > 0 {
		want := binary.BigEndian.Uint32(c.pending[8:12])
		if uint32(len(p)) != want {
			c.failLocked(ErrFraming)
			return 0, ErrFraming
		}
		if c.big {
			c.big = false
			return c.writeNowLocked(p)
		}
		c.enqueueLocked(c.pending, p)
		c.pending = c.pending[:0]
		return len(p), c.waitQueueLocked()
	}
	if len(p) == headerSize && p[1] == typeData {
		if n := binary.BigEndian.Uint32(p[8:12]); n > 0 {
			c.pending = append(c.pending, p...)
			c.big = n > maxCoalesce
			return len(p), nil
		}
	}
	if len(p) > maxCoalesce {
		return c.writeNowLocked(p)
	}
	c.enqueueLocked(p, nil)
	return len(p), c.waitQueueLocked()
}

// enqueueLocked appends a and b to the queue. A queue that would outgrow
// its buffer moves into a pooled one that fits the longest queue, rather
// than grow by doubling (an allocation and a copy each time, for every
// burst); its small buffer stays as the spare.
func (c *Coalescer) enqueueLocked(a, b []byte) {
	if n := len(c.queue) + len(a) + len(b); n > cap(c.queue) && c.pooled == nil && c.gather != nil {
		pb := c.gather.gr.queueBuffer()
		old := c.queue
		*pb = append((*pb)[:0], old...)
		c.queue, c.pooled = *pb, pb
		if c.spare == nil && cap(old) > 0 && cap(old) <= keepBuffer {
			c.spare = old[:0]
		}
	}
	c.queue = append(append(c.queue, a...), b...)
}

// kickLocked starts the writer unless it runs. Nothing starts once the
// Coalescer failed or closed, so Close's wait is final.
func (c *Coalescer) kickLocked() {
	if !c.running && c.err == nil {
		c.running = true
		c.writers.Go(c.writeBehind)
	}
}

// waitQueueLocked starts the writer and, when the queue is over its
// bound, waits until the writer has taken it.
func (c *Coalescer) waitQueueLocked() error {
	c.kickLocked()
	for len(c.queue) > maxQueue && c.err == nil {
		c.drained.Wait()
	}
	return c.err
}

// writeNowLocked writes the pending header (if any) and body itself,
// once everything queued before them is written, under a GatherConn hold
// when there is one. mu is released during the write, so that Close can
// end a write that does not progress.
func (c *Coalescer) writeNowLocked(body []byte) (int, error) {
	for (len(c.queue) > 0 || c.writing) && c.err == nil {
		c.kickLocked()
		c.drained.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	hdr := append(make([]byte, 0, headerSize), c.pending...)
	c.pending = c.pending[:0]
	c.writing = true
	c.mu.Unlock()
	var err error
	n := 0
	if c.gather != nil {
		c.gather.Hold()
	}
	if len(hdr) > 0 {
		_, err = c.conn.Write(hdr)
	}
	if err == nil {
		n, err = c.conn.Write(body)
	}
	if c.gather != nil {
		if ferr := c.gather.Flush(); err == nil {
			err = ferr
		}
	}
	c.mu.Lock()
	c.writing = false
	if err != nil {
		c.failLocked(err)
	}
	c.drained.Broadcast()
	if len(c.queue) > 0 {
		c.kickLocked()
	}
	return n, err
}

// failLocked records the first error and closes the connection, so that
// the reading side ends too.
func (c *Coalescer) failLocked(err error) {
	if c.err == nil {
		c.err = err
	}
	c.drained.Broadcast()
	_ = c.conn.Close()
}

// writeBehind writes what is queued, all of it in one write, until the
// queue is empty (or a large frame is being written, or writing failed).
func (c *Coalescer) writeBehind() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 && !c.writing && c.err == nil {
		out, pooled := c.queue, c.pooled
		c.queue, c.pooled, c.spare = c.spare[:0], nil, nil
		c.writing = true
		c.drained.Broadcast()
		c.mu.Unlock()
		_, err := c.conn.Write(out)
		c.mu.Lock()
		c.writing = false
		switch {
		case pooled != nil:
			c.gather.gr.putQueueBuffer(pooled, out)
		case cap(out) <= keepBuffer:
			c.spare = out[:0]
		}
		if err != nil {
			c.failLocked(err)
		}
	}
	c.running = false
	c.drained.Broadcast()
}
