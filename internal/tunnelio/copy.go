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

// Copy copies src to dst until EOF or an error, like io.Copy.
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
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			if w != n {
				return total, io.ErrShortWrite
			}
			switch {
			case n == len(buf) && big == nil:
				big, _ = b.big.Get().(*[]byte)
				if big == nil {
					s := make([]byte, bigBuffer)
					big = &s
				}
				buf = *big
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
