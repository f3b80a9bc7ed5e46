package tunnelio

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// tcpPair is a connected pair of loopback TCP connections.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// yamuxPair is a connected pair of yamux streams over net.Pipe.
func yamuxPair(t *testing.T) (*yamux.Stream, *yamux.Stream) {
	t.Helper()
	c1, c2 := net.Pipe()
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	client, err := yamux.Client(c1, cfg)
	if err != nil {
		t.Fatal(err)
	}
	server, err := yamux.Server(c2, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	accepted := make(chan *yamux.Stream, 1)
	go func() {
		s, _ := server.AcceptStream()
		accepted <- s
	}()
	a, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	// yamux announces a stream with its first frame.
	if _, err := a.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept stream failed")
	}
	if _, err := io.ReadFull(b, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestBufferedReadsReadAheadFirst(t *testing.T) {
	a, b := tcpPair(t)
	go func() { _, _ = io.WriteString(a, "header\nbody-1 body-2"); _ = a.CloseWrite() }()
	br := bufio.NewReader(b)
	line, err := br.ReadString('\n')
	if err != nil || line != "header\n" {
		t.Fatalf("header %q, %v", line, err)
	}
	// Whatever the reader took beyond the header must come first, then
	// the rest straight from the connection, nothing lost or repeated.
	rest, err := io.ReadAll(Buffered(b, br))
	if err != nil || string(rest) != "body-1 body-2" {
		t.Fatalf("after the header: %q, %v", rest, err)
	}
}

func TestCloseWriteHalfCloses(t *testing.T) {
	tests := []struct {
		name string
		pair func(t *testing.T) (net.Conn, net.Conn)
	}{
		{"tcp", func(t *testing.T) (net.Conn, net.Conn) { a, b := tcpPair(t); return a, b }},
		{"yamux stream", func(t *testing.T) (net.Conn, net.Conn) { a, b := yamuxPair(t); return a, b }},
		{"buffered tcp", func(t *testing.T) (net.Conn, net.Conn) {
			a, b := tcpPair(t)
			return Buffered(a, bufio.NewReader(a)), b
		}},
		{"buffered yamux stream", func(t *testing.T) (net.Conn, net.Conn) {
			a, b := yamuxPair(t)
			return Buffered(a, bufio.NewReader(a)), b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.pair(t)
			CloseWrite(a)
			// b sees EOF ...
			_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := b.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("after CloseWrite the peer read %d, %v; want EOF", n, err)
			}
			// ... and a can still read what b sends.
			if _, err := io.WriteString(b, "answer"); err != nil {
				t.Fatal(err)
			}
			_ = a.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := make([]byte, 6)
			if _, err := io.ReadFull(a, got); err != nil || string(got) != "answer" {
				t.Fatalf("read half after CloseWrite: %q, %v", got, err)
			}
		})
	}
}

func TestCloseWriteClosesWhatCannotHalfClose(t *testing.T) {
	a, b := net.Pipe()
	CloseWrite(a)
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("a net.Pipe end was not closed")
	}
	_ = b.Close()
}

// Splice carries bytes both ways, exactly, and passes a half-close on:
// the client sends everything, half-closes, and still gets the whole
// answer.
func TestSpliceBothWaysWithHalfClose(t *testing.T) {
	client, gwFront := tcpPair(t)
	gwBack, service := yamuxPair(t)
	var buffers Buffers
	spliced := make(chan struct{})
	go func() { buffers.Splice(gwFront, gwBack); close(spliced) }()

	payload := make([]byte, 3<<20) // big enough to switch to the big buffer
	_, _ = rand.Read(payload)
	serviceDone := make(chan error, 1)
	go func() {
		// The service reads to EOF, then answers with what it counted.
		got, err := io.ReadAll(service)
		if err == nil && !bytes.Equal(got, payload) {
			err = io.ErrUnexpectedEOF
		}
		_, _ = io.WriteString(service, "got it")
		_ = service.Close()
		serviceDone <- err
	}()
	if _, err := client.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(30 * time.Second))
	answer, err := io.ReadAll(client)
	if err != nil || string(answer) != "got it" {
		t.Fatalf("answer after half-close: %q, %v", answer, err)
	}
	if err := <-serviceDone; err != nil {
		t.Fatalf("service received a different payload: %v", err)
	}
	select {
	case <-spliced:
	case <-time.After(30 * time.Second):
		t.Fatal("Splice did not return after both directions ended")
	}
}

func TestUpgrade(t *testing.T) {
	tests := []struct {
		name       string
		answer     string
		wantStream string // bytes readable after a 101
		wantStatus int    // a refusal
	}{
		{"switching with bytes right behind the answer",
			"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test/1\r\n\r\nhello", "hello", 0},
		{"refused",
			"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno way", "", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tcpPair(t)
			requests := make(chan *http.Request, 1)
			go func() {
				req, err := http.ReadRequest(bufio.NewReader(server))
				if err != nil {
					requests <- nil
					return
				}
				requests <- req
				_, _ = io.WriteString(server, tt.answer)
				_ = server.CloseWrite()
			}()
			stream, resp, err := Upgrade(client, "gw.example", "/v1/x", "test/1", http.Header{"X-Token": {"t1"}})
			if err != nil {
				t.Fatal(err)
			}
			req := <-requests
			if req == nil || req.URL.Path != "/v1/x" || req.Host != "gw.example" ||
				req.Header.Get("Upgrade") != "test/1" || !strings.EqualFold(req.Header.Get("Connection"), "upgrade") ||
				req.Header.Get("X-Token") != "t1" {
				t.Fatalf("the request the server saw: %+v", req)
			}
			if tt.wantStatus != 0 {
				if stream != nil || resp == nil || resp.StatusCode != tt.wantStatus {
					t.Fatalf("refusal: stream %v, response %v", stream, resp)
				}
				body, _ := io.ReadAll(resp.Body)
				if string(body) != "no way" {
					t.Fatalf("refusal body %q", body)
				}
				return
			}
			if resp != nil || stream == nil {
				t.Fatalf("101: stream %v, response %v", stream, resp)
			}
			got, err := io.ReadAll(stream)
			if err != nil || string(got) != tt.wantStream {
				t.Fatalf("stream after 101: %q, %v", got, err)
			}
		})
	}
}
