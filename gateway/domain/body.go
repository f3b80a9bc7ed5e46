package domain

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// limitBody cuts r's body after limit bytes and returns the ResponseWriter
// next must use: if the body overflows before next answers, next's answer
// becomes a 413. http.MaxBytesReader gets the server's own writer, so the
// server closes the connection instead of draining the rest.
func limitBody(w http.ResponseWriter, r *http.Request, limit int64, onOver func()) *limitWriter {
	b := &bodyLimit{ReadCloser: http.MaxBytesReader(w, r.Body, limit), onOver: onOver}
	r.Body = b
	return &limitWriter{ResponseWriter: w, body: b}
}

// bodyLimit notes the first read that runs past the limit. Reads may come
// from another goroutine than next's (a proxy's transport), hence atomic.
type bodyLimit struct {
	io.ReadCloser
	over   atomic.Bool
	onOver func()
}

func (b *bodyLimit) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if err != nil && errors.As(err, &tooLarge) && b.over.CompareAndSwap(false, true) {
		b.onOver()
	}
	return n, err
}

// limitWriter passes next's answer through unless the body overflowed
// before the status went out; then it answers 413 and drops what next
// writes. It hides nothing: Flush and Hijack reach the server's writer
// through http.ResponseController, and Unwrap exposes it.
//
// Like any ResponseWriter it is used by one goroutine at a time.
type limitWriter struct {
	http.ResponseWriter
	body    *bodyLimit
	started bool // the final status went out
	refused bool // it was our 413
}

// Unwrap lets http.ResponseController find the server's writer.
func (w *limitWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *limitWriter) WriteHeader(code int) {
	switch {
	case w.refused:
		return
	case w.started:
		w.ResponseWriter.WriteHeader(code) // let the server complain
		return
	case code >= 100 && code < 200 && code != http.StatusSwitchingProtocols:
		w.ResponseWriter.WriteHeader(code) // informational: not the answer yet
		return
	}
	w.started = true
	if !w.body.over.Load() {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.refused = true
	h := w.ResponseWriter.Header()
	txid := h.Get(HeaderTransactionID)
	clear(h)
	h.Set(HeaderTransactionID, txid)
	h.Set("Connection", "close")
	http.Error(w.ResponseWriter, "413 request body too large", http.StatusRequestEntityTooLarge)
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	if w.refused {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Flush sends the status (200 unless set) and anything buffered.
func (w *limitWriter) Flush() {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands over the connection when the server's writer can.
func (w *limitWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.started = true
	}
	return c, rw, err
}
