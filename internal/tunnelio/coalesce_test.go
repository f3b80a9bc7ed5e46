package tunnelio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/hashicorp/yamux"
)

type recorder struct {
	writes [][]byte
	closed bool
}

func (r *recorder) Read([]byte) (int, error) { return 0, io.EOF }
func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, bytes.Clone(p))
	return len(p), nil
}
func (r *recorder) Close() error { r.closed = true; return nil }

func header(typ byte, length uint32) []byte {
	h := make([]byte, headerSize)
	h[1] = typ
	binary.BigEndian.PutUint32(h[4:8], 1)
	binary.BigEndian.PutUint32(h[8:12], length)
	return h
}

func TestCoalescer(t *testing.T) {
	tests := []struct {
		name   string
		writes [][]byte
		want   [][]byte
		err    error
	}{
		{"data header and body become one write", [][]byte{header(0, 3), []byte("abc")}, [][]byte{append(header(0, 3), "abc"...)}, nil},
		{"window update passes alone", [][]byte{header(1, 1000)}, [][]byte{header(1, 1000)}, nil},
		{"empty data frame (SYN/FIN) passes alone", [][]byte{header(0, 0)}, [][]byte{header(0, 0)}, nil},
		{"a big frame's header passes alone", [][]byte{header(0, maxCoalesce+1)}, [][]byte{header(0, maxCoalesce+1)}, nil},
		{"a short write passes", [][]byte{[]byte("abc")}, [][]byte{[]byte("abc")}, nil},
		{"a header not followed by its body closes", [][]byte{header(0, 3), header(2, 0)}, nil, ErrFraming},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
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
			if len(rec.writes) != len(tt.want) {
				t.Fatalf("%d writes, want %d", len(rec.writes), len(tt.want))
			}
			for i := range tt.want {
				if !bytes.Equal(rec.writes[i], tt.want[i]) {
					t.Errorf("write %d = %x, want %x", i, rec.writes[i], tt.want[i])
				}
			}
		})
	}
}

// TestCoalescerUnderYamux: real yamux sessions over a pipe with coalescing
// on both ends carry large, byte-exact transfers both ways.
func TestCoalescerUnderYamux(t *testing.T) {
	a, b := net.Pipe()
	client, err := yamux.Client(NewCoalescer(a), nil)
	if err != nil {
		t.Fatal(err)
	}
	server, err := yamux.Server(NewCoalescer(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Close(); _ = server.Close() }()
	echoOverYamux(t, client, server, bytes.Repeat([]byte("0123456789"), 400_000), io.Copy)
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
