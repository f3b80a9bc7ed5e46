package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// runnerRow is one runners-table row as the script draws it.
type runnerRow struct {
	ID       string `json:"id"`
	Href     string `json:"href"`
	Status   string `json:"status"`
	LastSeen string `json:"last_seen"`
	Version  string `json:"version"`
	Labels   string `json:"labels"`
	NotAfter string `json:"not_after"`
	Expiry   string `json:"expiry"`
}

// eventRow is one runner event as the script draws it.
type eventRow struct {
	Seq     int64  `json:"seq"`
	Time    string `json:"time"`
	Kind    string `json:"kind"`
	Level   string `json:"level"`
	Message string `json:"message"`
}

// events streams Server-Sent Events: "runners" (the whole runners table
// whenever it changes) and, with ?runner=ID, "event" (each new event of
// that runner) and "status" (its status). It polls the backend, so that
// changes made through any replica show. It ends when the client goes or
// the gateway stops.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		h.fail(w, r, http.StatusInternalServerError, "streaming is not supported here")
		return
	}
	rq := requestFrom(r)
	runner := r.URL.Query().Get("runner")
	if runner != "" {
		if _, err := h.o.Backend.Runner(r.Context(), runner); err != nil {
			h.userError(w, r, err)
			return
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	ctx := r.Context()
	fn := funcs(h.o.Now)
	var lastRunners []byte
	lastSeq := int64(-1)
	tick := time.NewTicker(h.o.Poll)
	defer tick.Stop()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		b, err := h.runnerRows(ctx, rq.prefix, fn)
		if err != nil {
			h.o.Log.Warn("ui event stream", "err", err)
			return
		}
		if !bytes.Equal(b, lastRunners) {
			lastRunners = b
			if !send(w, "runners", b) {
				return
			}
		}
		if runner != "" {
			if lastSeq, err = h.runnerEvents(ctx, w, runner, lastSeq); err != nil {
				h.o.Log.Warn("ui event stream", "runner", runner, "err", err)
				return
			}
		}
		fl.Flush()
		select {
		case <-ctx.Done():
			return
		case <-h.o.Done:
			return
		case <-keepalive.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil {
				return
			}
		case <-tick.C:
		}
	}
}

func (h *Handler) runnerRows(ctx context.Context, prefix string, fn map[string]any) ([]byte, error) {
	rs, err := h.o.Backend.Runners(ctx)
	if err != nil {
		return nil, err
	}
	ts := fn["ts"].(func(time.Time) string)
	labels := fn["labels"].(func(map[string]string) string)
	rows := make([]runnerRow, 0, len(rs))
	for _, rn := range rs {
		rows = append(rows, runnerRow{ID: rn.ID, Href: prefix + "/runners/" + pathEscape(rn.ID), Status: rn.Status,
			LastSeen: ts(rn.LastSeen), Version: rn.Version, Labels: labels(rn.Labels), NotAfter: ts(rn.CertNotAfter),
			Expiry: expiryClass(h.o.Now(), rn.CertNotAfter)})
	}
	return json.Marshal(rows)
}

// runnerEvents sends the runner's events after lastSeq (-1: only start
// counting, the page already shows the past) and its status.
func (h *Handler) runnerEvents(ctx context.Context, w http.ResponseWriter, runner string, lastSeq int64) (int64, error) {
	if lastSeq < 0 {
		evs, err := h.o.Backend.Events(ctx, runner, 0, 0)
		if err != nil {
			return lastSeq, err
		}
		lastSeq = 0
		if len(evs) > 0 {
			lastSeq = evs[len(evs)-1].Seq
		}
		return lastSeq, nil
	}
	evs, err := h.o.Backend.Events(ctx, runner, lastSeq, 500)
	if err != nil {
		return lastSeq, err
	}
	for _, e := range evs {
		b, _ := json.Marshal(eventRow{Seq: e.Seq, Time: e.Time.UTC().Format("2006-01-02 15:04:05Z"), Kind: e.Kind,
			Level: e.Level, Message: e.Message})
		if !send(w, "event", b) {
			return lastSeq, ctx.Err()
		}
		lastSeq = e.Seq
	}
	return lastSeq, nil
}

func send(w http.ResponseWriter, event string, data []byte) bool {
	_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
	return err == nil
}
