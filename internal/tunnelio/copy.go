package tunnelio

import (
	"errors"
	"io"
	"sync"
)

// Buffer sizes for Copy: an idle or chatty connection holds only a small
// buffer per direction; a direction whose reads fill it switches to a big
// pooled one, and back when reads are small again.
const (
	smallBuffer = 4 << 10
	bigBuffer   = 256 << 10
)

// Buffers copies connection data with adaptive buffers. The zero value is
// ready to use; share one per process part.
type Buffers struct{ big sync.Pool }

// Copy copies src to dst until EOF or an error, like io.Copy. A direction
// starts with a small buffer. A read that fills it switches to a big
// pooled one, and a read that fills that switches to copyBulk, which
// reads the next big buffer while the last one is written. A small read
// goes back to the small buffer.
func (b *Buffers) Copy(dst io.Writer, src io.Reader) (int64, error) {
	small := make([]byte, smallBuffer)
	buf := small
	var big *[]byte
	defer func() {
		if big != nil {
			b.big.Put(big)
		}
	}()
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			w, werr := writeAll(dst, buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			switch {
			case n == len(buf) && big == nil:
				big = b.get()
				buf = *big
			case n == len(buf) && rerr == nil:
				var written int64
				written, rerr, werr = b.copyBulk(dst, src, big)
				total += written
				if werr != nil {
					return total, werr
				}
				b.big.Put(big)
				big, buf = nil, small
			case n < smallBuffer/2 && big != nil:
				b.big.Put(big)
				big, buf = nil, small
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return total, nil
			}
			return total, rerr
		}
	}
}

// writeAll writes p to dst, a short write being an error as in io.Copy.
func writeAll(dst io.Writer, p []byte) (int, error) {
	w, err := dst.Write(p)
	if err == nil && w != len(p) {
		err = io.ErrShortWrite
	}
	return w, err
}

// get returns a big buffer from the pool, or a new one.
func (b *Buffers) get() *[]byte {
	if p, ok := b.big.Get().(*[]byte); ok {
		return p
	}
	s := make([]byte, bigBuffer)
	return &s
}

// copyBulk copies with two big buffers, first and one from the pool: a
// goroutine of its own writes one while the next is read, so that on two
// CPUs a bulk transfer's reads overlap its writes (through a tunnel, a
// write is a stream frame, its encryption and a system call). It returns
// once a read comes back small or fails, or a write fails, with every
// byte read before that written (or failed) and the writer gone.
func (b *Buffers) copyBulk(dst io.Writer, src io.Reader, first *[]byte) (written int64, rerr, werr error) {
	second := b.get()
	defer b.big.Put(second)
	free := make(chan []byte, 2)
	free <- *first
	free <- *second
	full := make(chan []byte, 1)
	failed := make(chan struct{}) // closed by the writer on its first error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range full {
			if werr == nil {
				var w int
				w, werr = writeAll(dst, p)
				written += int64(w)
				if werr != nil {
					close(failed)
				}
			}
			free <- p[:cap(p)]
		}
	}()
	for {
		var buf []byte
		select {
		case <-failed:
		default:
			select {
			case buf = <-free:
			case <-failed:
			}
		}
		if buf == nil {
			break // the writer failed
		}
		n, err := src.Read(buf)
		if n > 0 {
			full <- buf[:n]
		} else {
			free <- buf
		}
		if err != nil || n < smallBuffer/2 {
			rerr = err
			break
		}
	}
	close(full)
	<-done
	return written, rerr, werr
}

// ProxyBuffers is an httputil.BufferPool for the reverse proxies of HTTP
// domains: without one, every proxied response allocates a fresh 32 KiB
// copy buffer. The zero value is ready to use.
type ProxyBuffers struct{ pool sync.Pool }

// Get returns a 32 KiB buffer.
func (p *ProxyBuffers) Get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

// Put returns b to the pool.
func (p *ProxyBuffers) Put(b []byte) { p.pool.Put(&b) }
