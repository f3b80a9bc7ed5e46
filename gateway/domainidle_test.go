package gateway

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestPublicConnHalfClose: the wrapper on public connections keeps the
// TCP half-close net/http's server relies on: the peer reads EOF and can
// still answer.
func TestPublicConnHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		got, _ := io.ReadAll(c) // until the FIN
		_, _ = c.Write(append([]byte("got "), got...))
	}()
	raw, err := publicListener{ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := raw.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	cw, ok := raw.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("a public connection cannot half-close")
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(raw)
	if err != nil || string(back) != "got answer" {
		t.Fatalf("after half-close: %q, %v", back, err)
	}
}
