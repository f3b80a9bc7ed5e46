package tunnelio

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/yamux"
)

// writeLog is a connection that records its writes.
type writeLog struct {
	net.Conn // nil: only Write is used
	writes   [][]byte
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func (w *writeLog) Close() error { return nil }

// TestCoalescerGathersBigFrames: a data frame over the coalescing limit
// goes out as one write of header and body through the GatherConn; small
// frames and control frames are as without it, and nothing stays held.
func TestCoalescerGathersBigFrames(t *testing.T) {
	big := bytes.Repeat([]byte("b"), maxCoalesce+1)
	for _, tc := range []struct {
		name   string
		writes [][]byte
		want   [][]byte
	}{
		{"big frame: one write", [][]byte{header(0, uint32(len(big))), big}, [][]byte{append(header(0, uint32(len(big))), big...)}},
		{"small frame: one write", [][]byte{header(0, 3), []byte("abc")}, [][]byte{append(header(0, 3), "abc"...)}},
		{"window update alone", [][]byte{header(1, 9)}, [][]byte{header(1, 9)}},
		{"big frame then window update", [][]byte{header(0, uint32(len(big))), big, header(1, 9)},
			[][]byte{append(header(0, uint32(len(big))), big...), header(1, 9)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var gr Gatherer
			log := &writeLog{}
			g := gr.Conn(log)
			c := NewCoalescer(g)
			c.SetGather(g)
			for _, w := range tc.writes {
				if n, err := c.Write(w); err != nil || n != len(w) {
					t.Fatalf("write of %d: %d, %v", len(w), n, err)
				}
			}
			_ = c.Close() // writes what is queued
			if len(log.writes) != len(tc.want) {
				t.Fatalf("%d writes, want %d", len(log.writes), len(tc.want))
			}
			for i := range tc.want {
				if !bytes.Equal(log.writes[i], tc.want[i]) {
					t.Errorf("write %d: %d bytes, want %d", i, len(log.writes[i]), len(tc.want[i]))
				}
			}
			if g.holding || g.buf != nil {
				t.Error("the GatherConn is still holding after the frame")
			}
		})
	}
	t.Run("big header not followed by its body closes", func(t *testing.T) {
		var gr Gatherer
		rec := newRecorder()
		c := NewCoalescer(rec)
		defer func() { _ = c.Close() }()
		c.SetGather(gr.Conn(&writeLog{}))
		_, _ = c.Write(header(0, uint32(len(big))))
		if _, err := c.Write([]byte("short")); err == nil || !rec.closed {
			t.Fatalf("err %v, closed %v: want a framing error and the connection closed", err, rec.closed)
		}
	})
}

// TestGatherConnHalfClose: CloseWrite reaches the TCP connection under a
// GatherConn: the peer reads EOF and can still answer.
func TestGatherConnHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		got, _ := io.ReadAll(c) // until the FIN
		_, _ = c.Write(append([]byte("got "), got...))
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var gr Gatherer
	g := gr.Conn(raw)
	defer g.Close()
	_ = g.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := g.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	var cw interface{ CloseWrite() error } = g
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(g)
	if err != nil || string(answer) != "got ping" {
		t.Fatalf("answer after half-close: %q, %v", answer, err)
	}
}

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestGatherUnderTLS: yamux over real TLS on loopback TCP, with the
// server's socket under a GatherConn: 8 MiB echoed byte-exact, and the
// server's frames of up to 256 KiB reach its socket in far fewer writes
// than there are 16 KiB TLS records.
func TestGatherUnderTLS(t *testing.T) {
	cert := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var gr Gatherer
	var sock *countingConn
	accepted := make(chan *tls.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		sock = &countingConn{Conn: c}
		accepted <- tls.Server(gr.Conn(sock), &tls.Config{Certificates: []tls.Certificate{cert}})
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	cc := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "tunnel.test"})
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	defer sc.Close()
	var hs sync.WaitGroup
	hs.Go(func() { _ = sc.HandshakeContext(ctx) })
	if err := cc.HandshakeContext(ctx); err != nil {
		t.Fatal(err)
	}
	hs.Wait()

	co := NewCoalescer(sc)
	g := GatherOf(sc)
	if g == nil {
		t.Fatal("GatherOf found no GatherConn under the TLS connection")
	}
	co.SetGather(g)
	server, err := yamux.Server(co, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := yamux.Client(NewCoalescer(cc), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	payload := make([]byte, 8<<20)
	_, _ = rand.Read(payload)
	before := sock.writes.Load()
	var bufs Buffers // echo in up to 256 KiB reads, so big frames
	echoOverYamux(t, client, server, payload, bufs.Copy)
	records := int64(len(payload) / (16 << 10))
	if n := sock.writes.Load() - before; n >= records/2 {
		t.Errorf("%d socket writes for %d TLS records of data: the records were not gathered", n, records)
	}
}

// TestCoalescerCloseUnderTLS: closing a TLS connection sends a
// close_notify alert, and tls.Conn waits up to 5 s for a peer that does
// not read. Close gives up at closeFlush: it closes the connection under
// TLS (the GatherConn) and returns.
func TestCoalescerCloseUnderTLS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cert := selfSigned(t) // in the bubble: its validity starts at the bubble's clock
		pool := x509.NewCertPool()
		pool.AddCert(cert.Leaf)
		a, b := net.Pipe() // a write waits until the other end reads
		var gr Gatherer
		g := gr.Conn(a)
		// No session tickets: they would be a write after the handshake
		// that the client, which reads nothing more, never takes.
		sc := tls.Server(g, &tls.Config{Certificates: []tls.Certificate{cert}, SessionTicketsDisabled: true})
		cc := tls.Client(b, &tls.Config{RootCAs: pool, ServerName: "tunnel.test"})
		var hs sync.WaitGroup
		hs.Go(func() {
			if err := cc.Handshake(); err != nil {
				t.Errorf("client handshake: %v", err)
			}
		})
		if err := sc.Handshake(); err != nil {
			t.Fatal(err)
		}
		hs.Wait()

		co := NewCoalescer(sc)
		co.SetGather(g)
		start := time.Now()
		_ = co.Close()
		if waited := time.Since(start); waited != closeFlush {
			t.Fatalf("Close to a peer that does not read took %v, want %v", waited, closeFlush)
		}
		if _, err := a.Write([]byte{0}); err == nil {
			t.Fatal("the connection under TLS is still open")
		}
		_ = b.Close()
	})
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tunnel.test"},
		DNSNames: []string{"tunnel.test"}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// gatedSink takes every write, each only once gate lets it.
type gatedSink struct {
	net.Conn // nil: only Write and Close are used
	gate     chan struct{}
}

func (s *gatedSink) Write(p []byte) (int, error) { <-s.gate; return len(p), nil }
func (s *gatedSink) Close() error                { return nil }

// TestCoalescerQueueBuffersPooled: a burst of frames that queues behind a
// slow write outgrows the small spare buffer. It moves into a pooled
// queue buffer instead of growing one allocation at a time, so a
// tunnel's steady bursts cost the collector nothing.
func TestCoalescerQueueBuffersPooled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &gatedSink{gate: make(chan struct{})}
		var gr Gatherer
		c := NewCoalescer(sink)
		c.SetGather(gr.Conn(sink))
		frame := append(header(0, 1024), make([]byte, 1024)...)
		write := func() {
			if _, err := c.Write(frame[:headerSize]); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(frame[headerSize:]); err != nil {
				t.Fatal(err)
			}
		}
		burst := func() {
			write()
			synctest.Wait() // the writer waits in its write of the first frame
			for range maxQueue/len(frame) - 4 {
				write()
			}
			sink.gate <- struct{}{} // the first frame; the writer takes the queue
			sink.gate <- struct{}{} // the queue, about 60 KiB in one write
			synctest.Wait()
		}
		burst() // fills the pool
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const bursts = 10
		for range bursts {
			burst()
		}
		runtime.ReadMemStats(&after)
		limit := uint64(4 << 10) // the writer goroutine's start, not the queue
		if raceDetector {
			limit = queueBuffer // the pool drops some buffers, never one a burst
		}
		if per := (after.TotalAlloc - before.TotalAlloc) / bursts; per > limit {
			t.Errorf("a burst of %d KiB allocated %d bytes (limit %d); want its queue in a pooled buffer", maxQueue>>10, per, limit)
		}
		_ = c.Close()
	})
}
