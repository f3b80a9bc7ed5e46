package tunnelio

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// scriptedReader returns its reads in order, each all of one chunk
// (pattern bytes), then err. Every Read is announced on calls.
type scriptedReader struct {
	sizes []int
	err   error
	calls chan int // the number of the Read, from 1
	n     int
	sent  bytes.Buffer
}

func (r *scriptedReader) Read(p []byte) (int, error) {
	r.n++
	if r.calls != nil {
		r.calls <- r.n
	}
	if len(r.sizes) == 0 {
		return 0, r.err
	}
	k := min(r.sizes[0], len(p))
	r.sizes = r.sizes[1:]
	for i := range p[:k] {
		p[i] = byte(r.sent.Len() + i)
	}
	r.sent.Write(p[:k])
	return k, nil
}

// gatedWriter keeps what it is written. Each Write is announced on
// writing and, when release is set, waits for a value from it; the Write
// numbered failAt fails.
type gatedWriter struct {
	got     bytes.Buffer
	writing chan int
	release chan struct{}
	failAt  int
	n       int
}

var errWrite = errors.New("write failed")

func (w *gatedWriter) Write(p []byte) (int, error) {
	w.n++
	if w.writing != nil {
		w.writing <- w.n
	}
	if w.release != nil {
		<-w.release
	}
	if w.n == w.failAt {
		return 0, errWrite
	}
	return w.got.Write(p)
}

// TestCopyBulkReadsWhileWriting: once reads fill the big buffer, the next
// read happens while the last write is still in progress (a plain copy
// loop would wait for it), and the bytes arrive exactly, across the
// switches between the small buffer, the big one and bulk.
func TestCopyBulkReadsWhileWriting(t *testing.T) {
	sizes := []int{smallBuffer, bigBuffer, bigBuffer, bigBuffer, 100, smallBuffer, bigBuffer, bigBuffer, 7}
	src := &scriptedReader{sizes: sizes, err: io.EOF, calls: make(chan int, 100)}
	dst := &gatedWriter{writing: make(chan int, 100), release: make(chan struct{})}
	var b Buffers
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := b.Copy(dst, src)
		done <- result{n, err}
	}()
	wait := func(ch chan int, what string) int {
		t.Helper()
		select {
		case n := <-ch:
			return n
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
			return 0
		}
	}
	// Reads 1 (small buffer) and 2 (big buffer, full) are each written
	// before the next read; read 3 is bulk's first.
	for i := 1; i <= 2; i++ {
		wait(src.calls, "read")
		wait(dst.writing, "write")
		dst.release <- struct{}{}
	}
	wait(src.calls, "read 3")
	if w := wait(dst.writing, "write 3"); w != 3 {
		t.Fatalf("write %d, want 3", w)
	}
	// Write 3 is held: read 4 must happen anyway.
	if r := wait(src.calls, "read 4 while write 3 is in progress"); r != 4 {
		t.Fatalf("read %d, want 4", r)
	}
	close(dst.release)
	r := <-done
	if r.err != nil || r.n != int64(src.sent.Len()) || !bytes.Equal(dst.got.Bytes(), src.sent.Bytes()) {
		t.Fatalf("copied %d of %d bytes (%v), equal %v", r.n, src.sent.Len(), r.err, bytes.Equal(dst.got.Bytes(), src.sent.Bytes()))
	}
}

// TestCopyBulkErrors: a failed write in bulk stops the reads and is
// returned, even from a source that never ends; a failed read is returned
// after every byte read before it is written.
func TestCopyBulkErrors(t *testing.T) {
	endless := make([]int, 1000)
	for i := range endless {
		endless[i] = bigBuffer
	}
	t.Run("write fails", func(t *testing.T) {
		src := &scriptedReader{sizes: endless, err: io.EOF}
		dst := &gatedWriter{failAt: 5}
		var b Buffers
		n, err := b.Copy(dst, src)
		if !errors.Is(err, errWrite) {
			t.Fatalf("Copy returned %v, want the write error", err)
		}
		if n != int64(dst.got.Len()) || src.n > dst.failAt+3 {
			t.Fatalf("reported %d bytes, wrote %d; %d reads for %d writes", n, dst.got.Len(), src.n, dst.n)
		}
	})
	t.Run("read fails", func(t *testing.T) {
		errRead := errors.New("read failed")
		src := &scriptedReader{sizes: []int{smallBuffer, bigBuffer, bigBuffer, bigBuffer, 5000}, err: errRead}
		dst := &gatedWriter{}
		var b Buffers
		n, err := b.Copy(dst, src)
		if !errors.Is(err, errRead) || n != int64(src.sent.Len()) || !bytes.Equal(dst.got.Bytes(), src.sent.Bytes()) {
			t.Fatalf("Copy: %d of %d bytes, %v; want all of them and the read error", n, src.sent.Len(), err)
		}
	})
}
