package tunnelio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/yamux"
)

// recorder records writes. While gate is set, each Write first waits
// for a value from it (or for Close).
type recorder struct {
	mu     sync.Mutex
	writes [][]byte
	closed bool
	gate   chan struct{}
	shut   chan struct{}
	fail   error
}

func newRecorder() *recorder { return &recorder{shut: make(chan struct{})} }

func (r *recorder) Read([]byte) (int, error) { return 0, io.EOF }
func (r *recorder) Write(p []byte) (int, error) {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-r.shut:
			return 0, net.ErrClosed
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return 0, r.fail
	}
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}
func (r *recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.shut)
	}
	return nil
}
func (r *recorder) got() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.writes)
}

func header(typ byte, length uint32) []byte {
	h := make([]byte, headerSize)
	h[1] = typ
	binary.BigEndian.PutUint32(h[4:8], 1)
	binary.BigEndian.PutUint32(h[8:12], length)
	return h
}

func TestCoalescer(t *testing.T) {
	big := bytes.Repeat([]byte("b"), maxCoalesce+1)
	tests := []struct {
		name   string
		writes [][]byte
		want   [][]byte
		err    error
	}{
		{"data header and body become one write", [][]byte{header(0, 3), []byte("abc")}, [][]byte{append(header(0, 3), "abc"...)}, nil},
		{"window update is written", [][]byte{header(1, 1000)}, [][]byte{header(1, 1000)}, nil},
		{"empty data frame (SYN/FIN) is written", [][]byte{header(0, 0)}, [][]byte{header(0, 0)}, nil},
		{"a big frame's header and body are written without a copy", [][]byte{header(0, maxCoalesce+1), big}, [][]byte{header(0, maxCoalesce+1), big}, nil},
		{"a short write is written", [][]byte{[]byte("abc")}, [][]byte{[]byte("abc")}, nil},
		{"a header not followed by its body closes", [][]byte{header(0, 3), header(2, 0)}, nil, ErrFraming},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			c := NewCoalescer(rec)
			var err error
			for _, w := range tt.writes {
				if _, err = c.Write(w); err != nil {
					break
				}
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if tt.err != nil && !rec.closed {
				t.Fatal("framing error did not close the connection")
			}
			_ = c.Close() // writes what is queued
			got := rec.got()
			if len(got) != len(tt.want) {
				t.Fatalf("%d writes, want %d", len(got), len(tt.want))
			}
			for i := range tt.want {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("write %d = %x, want %x", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestCoalescerWritesBehind: frames queued while a write is in progress
// go out together in the next write, in order, with a big frame after
// everything queued before it, and no goroutine is left once all is
// written; a full queue holds the writer back; a write error reaches the
// next Write and closes the connection.
func TestCoalescerWritesBehind(t *testing.T) {
	frame := func(body string) []byte { return append(header(0, uint32(len(body))), body...) }
	write := func(t *testing.T, c *Coalescer, frames ...[]byte) {
		t.Helper()
		for _, f := range frames {
			if _, err := c.Write(f[:headerSize]); err != nil {
				t.Fatal(err)
			}
			if len(f) > headerSize {
				if _, err := c.Write(f[headerSize:]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// stuck returns a Coalescer, in the calling bubble, whose writer
	// waits inside its write of frame(first) until the recorder's gate
	// lets it go.
	stuck := func(t *testing.T, first string) (*recorder, *Coalescer) {
		rec := newRecorder()
		rec.gate = make(chan struct{})
		c := NewCoalescer(rec)
		t.Cleanup(func() { _ = c.Close() })
		write(t, c, frame(first))
		synctest.Wait()
		return rec, c
	}
	t.Run("batch and order", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec, c := stuck(t, "one")
			write(t, c, frame("two"), header(1, 7), frame("three"))
			bigDone := make(chan struct{})
			bigBody := bytes.Repeat([]byte("B"), maxCoalesce+5)
			go func() {
				defer close(bigDone)
				write(t, c, append(header(0, uint32(len(bigBody))), bigBody...))
			}()
			synctest.Wait()
			select {
			case <-bigDone:
				t.Fatal("a big frame was written before the frames queued ahead of it")
			default:
			}
			for range 4 { // one, the batch, the big header, the big body
				rec.gate <- struct{}{}
			}
			<-bigDone
			want := [][]byte{frame("one"), slices.Concat(frame("two"), header(1, 7), frame("three")), header(0, uint32(len(bigBody))), bigBody}
			got := rec.got()
			if len(got) != len(want) {
				t.Fatalf("%d writes, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("write %d: %d bytes %.40q, want %d bytes %.40q", i, len(got[i]), got[i], len(want[i]), want[i])
				}
			}
			synctest.Wait() // an idle Coalescer holds no goroutine
			c.mu.Lock()
			running := c.running
			c.mu.Unlock()
			if running {
				t.Error("the writer goroutine is still running with nothing queued")
			}
		})
	})
	t.Run("a full queue waits", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec, c := stuck(t, "first")
			chunk := string(bytes.Repeat([]byte("q"), maxCoalesce))
			filled := make(chan struct{})
			go func() {
				defer close(filled)
				for range maxQueue/maxCoalesce + 1 {
					write(t, c, frame(chunk))
				}
			}()
			synctest.Wait()
			select {
			case <-filled:
				t.Fatal("the queue grew past its bound while the writer was stuck")
			default:
			}
			rec.gate <- struct{}{} // "first" written; the writer takes the queue
			<-filled
			close(rec.gate)
		})
	})
	t.Run("write error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := newRecorder()
			rec.fail = errors.New("broken pipe")
			c := NewCoalescer(rec)
			defer func() { _ = c.Close() }()
			write(t, c, frame("lost"))
			synctest.Wait()
			if _, err := c.Write(header(1, 1)); err == nil || err.Error() != "broken pipe" {
				t.Fatalf("the write after a failed one: %v, want broken pipe", err)
			}
			if !rec.closed {
				t.Fatal("a write error did not close the connection")
			}
		})
	})
	t.Run("close of a stuck connection", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, c := stuck(t, "stuck") // never let go
			write(t, c, frame("queued"))
			start := time.Now()
			_ = c.Close()
			if waited := time.Since(start); waited != closeFlush {
				t.Fatalf("Close waited %v for a stuck connection, want %v", waited, closeFlush)
			}
			if _, err := c.Write(header(1, 1)); !errors.Is(err, errCoalescerClosed) {
				t.Fatalf("write after Close: %v", err)
			}
		})
	})
	t.Run("close after the peer is gone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			_, c := stuck(t, "stuck")
			write(t, c, frame("queued"))
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatal("the recorder's read did not fail")
			}
			start := time.Now()
			_ = c.Close()
			if waited := time.Since(start); waited != 0 {
				t.Fatalf("Close waited %v to flush to a peer whose connection already failed, want no wait", waited)
			}
		})
	})
}

// TestCoalescerUnderYamux: real yamux sessions over a pipe with coalescing
// on both ends carry large, byte-exact transfers both ways.
func TestCoalescerUnderYamux(t *testing.T) {
	client, server := coalescedSessions(t)
	defer func() { _ = client.Close(); _ = server.Close() }()
	echoOverYamux(t, client, server, bytes.Repeat([]byte("0123456789"), 400_000), io.Copy)
}

// TestCoalescerCloseWritesQueued: a session closed right after a
// stream's last write still delivers it: Close writes what yamux has
// handed over before the connection closes.
func TestCoalescerCloseWritesQueued(t *testing.T) {
	for range 20 {
		client, server := coalescedSessions(t)
		accepted, got := make(chan struct{}), make(chan []byte, 1)
		go func() {
			defer close(got)
			s, err := server.AcceptStream()
			close(accepted)
			if err != nil {
				return
			}
			data, _ := io.ReadAll(s)
			got <- data
		}()
		s, err := client.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		<-accepted // yamux drops a stream not accepted before its session ends
		payload := bytes.Repeat([]byte("last words "), 1000)
		if _, err := s.Write(payload); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		_ = client.Close()
		if data := <-got; !bytes.Equal(data, payload) {
			t.Fatalf("the peer got %d of %d bytes written before the session closed", len(data), len(payload))
		}
		_ = server.Close()
	}
}

// coalescedSessions returns a yamux client and server over a pipe, with
// a Coalescer under each end.
func coalescedSessions(t *testing.T) (client, server *yamux.Session) {
	t.Helper()
	co := func(c net.Conn) io.ReadWriteCloser { return NewCoalescer(c) }
	return pipeSessions(t, co, co)
}

// pipeSessions returns a yamux client and server over a pipe, each on
// what its wrapper makes of its end.
func pipeSessions(t *testing.T, clientConn, serverConn func(net.Conn) io.ReadWriteCloser) (client, server *yamux.Session) {
	t.Helper()
	a, b := net.Pipe()
	client, err := yamux.Client(clientConn(a), nil)
	if err != nil {
		t.Fatal(err)
	}
	server, err = yamux.Server(serverConn(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

// echoOverYamux opens a stream from client, has server echo it with echo
// until the client's FIN, and checks that payload comes back whole.
func echoOverYamux(t *testing.T, client, server *yamux.Session, payload []byte, echo func(io.Writer, io.Reader) (int64, error)) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		s, err := server.AcceptStream()
		if err != nil {
			done <- err
			return
		}
		_, err = echo(s, s)
		_ = s.Close()
		done <- err
	}()
	s, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = s.Write(payload)
		_ = s.Close()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo through yamux: %d of %d bytes, %v", len(got), len(payload), err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCopyAdapts: byte-exact for every mix of read sizes, switching to the
// big buffer under bulk and back for small reads.
func TestCopyAdapts(t *testing.T) {
	var b Buffers
	payload := bytes.Repeat([]byte("leash-tunnel"), 300_000) // 3.6 MB
	for _, chunk := range []int{1, 100, smallBuffer, smallBuffer + 1, bigBuffer, 1 << 20} {
		src := io.MultiReader(&chunked{data: payload, n: chunk}, bytes.NewReader([]byte("tail")))
		var dst bytes.Buffer
		n, err := b.Copy(&dst, src)
		if err != nil || n != int64(len(payload)+4) || !bytes.Equal(dst.Bytes()[:len(payload)], payload) {
			t.Fatalf("chunk %d: %d bytes, %v", chunk, n, err)
		}
	}
}

// chunked returns at most n bytes per Read.
type chunked struct {
	data []byte
	n    int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}
