package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// recheck is how often a waiting long-poll looks at the queue without a
// signal: it covers jobs submitted through a store that cannot signal this
// process and leases that ran out.
const recheck = time.Second

// waiters wakes the long-polls of one runner.
type waiters struct {
	mu sync.Mutex
	by map[string]map[chan struct{}]struct{}
	n  int
}

func newWaiters() *waiters { return &waiters{by: map[string]map[chan struct{}]struct{}{}} }

func (w *waiters) add(runner string) chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.by[runner] == nil {
		w.by[runner] = map[chan struct{}]struct{}{}
	}
	w.by[runner][ch] = struct{}{}
	w.n++
	return ch
}

func (w *waiters) remove(runner string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.by[runner], ch)
	if len(w.by[runner]) == 0 {
		delete(w.by, runner)
	}
	w.n--
}

func (w *waiters) wake(runner string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.by[runner] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (w *waiters) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// runJobSignals fans the store's job signals out to waiting long-polls.
func (s *Server) runJobSignals(ctx context.Context) error {
	ch, err := s.st.JobSignals(ctx)
	if err != nil {
		return err
	}
	for runner := range ch {
		s.polls.wake(runner)
	}
	return nil
}

// nextJob claims the caller's next job, waiting up to ?wait= for one.
func (s *Server) nextJob(w http.ResponseWriter, r *http.Request, c caller) error {
	wait := protocol.DefaultJobWait
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > protocol.MaxJobWait {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "wait %q: a duration between 0s and %s", v, protocol.MaxJobWait)
		}
		wait = d
	}
	if _, err := s.st.Runner(r.Context(), c.id.Name); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, protocol.CodeUnknownRunner, "runner %s has not registered", c.id.Name)
	} else if err != nil {
		return err
	}
	wake := s.polls.add(c.id.Name)
	defer s.polls.remove(c.id.Name, wake)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(recheck)
	defer tick.Stop()
	for {
		now := s.now().UTC()
		job, err := s.st.ClaimJob(r.Context(), c.id.Name, now, now.Add(s.cfg.JobLease))
		if err == nil {
			s.audit(r.Context(), c.actor(), "job.claim", job.ID, "attempt "+strconv.Itoa(job.Attempts))
			writeJSON(w, http.StatusOK, jobView(job))
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		select {
		case <-wake:
		case <-tick.C:
		case <-deadline.C:
			w.WriteHeader(http.StatusNoContent)
			return nil
		case <-s.stopping:
			w.WriteHeader(http.StatusNoContent)
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

func (s *Server) jobResult(w http.ResponseWriter, r *http.Request, c caller) error {
	var res protocol.JobResult
	if err := decodeJSON(w, r, &res); err != nil {
		return err
	}
	if len(res.Output) > protocol.MaxJobOutputBytes {
		return errorf(http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, "output longer than %d bytes", protocol.MaxJobOutputBytes)
	}
	if len(res.Data) > 0 && !json.Valid(res.Data) {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "data is not valid JSON")
	}
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	state := protocol.JobFailed
	if res.OK {
		state = protocol.JobSucceeded
	}
	id := r.PathValue("id")
	err = s.st.FinishJob(r.Context(), id, c.id.Name, state, body, s.now().UTC())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no job %s", id)
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, protocol.CodeConflict, "job %s: %v", id, err)
	case err != nil:
		return err
	}
	s.audit(r.Context(), c.actor(), "job.finish", id, state)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) submitJob(w http.ResponseWriter, r *http.Request, c caller) error {
	var sub protocol.JobSubmit
	if err := decodeJSON(w, r, &sub); err != nil {
		return err
	}
	if err := leashtls.ValidName(sub.Runner); err != nil {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "runner: %v", err)
	}
	switch sub.Kind {
	case protocol.JobExec:
		if err := leashtls.ValidName(sub.Command); err != nil {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "exec needs the name of a command the runner declares: %v", err)
		}
	case protocol.JobInfo, protocol.JobRotate:
		if sub.Command != "" {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "%s takes no command", sub.Kind)
		}
	default:
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "unknown job kind %q: use info, exec or rotate", sub.Kind)
	}
	if sub.Timeout.D() > 24*time.Hour {
		return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "timeout above 24h")
	}
	if _, err := s.st.Runner(r.Context(), sub.Runner); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no runner %s", sub.Runner)
	} else if err != nil {
		return err
	}
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	job := store.JobRecord{ID: "job-" + hex.EncodeToString(b), Runner: sub.Runner, Kind: sub.Kind, Command: sub.Command,
		Timeout: sub.Timeout.D(), State: protocol.JobQueued, SubmittedBy: c.actor(), CreatedAt: s.now().UTC()}
	if err := s.st.SubmitJob(r.Context(), job); err != nil {
		return err
	}
	s.audit(r.Context(), c.actor(), "job.submit", job.ID, sub.Runner+" "+sub.Kind+" "+sub.Command)
	writeJSON(w, http.StatusCreated, jobView(job))
	return nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, _ caller) error {
	q := store.JobQuery{Runner: r.URL.Query().Get("runner"), State: r.URL.Query().Get("state"), Limit: 100}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errorf(http.StatusBadRequest, protocol.CodeBadRequest, "limit %q: 1 to 1000", v)
		}
		q.Limit = n
	}
	jobs, err := s.st.Jobs(r.Context(), q)
	if err != nil {
		return err
	}
	out := protocol.JobList{Jobs: []protocol.Job{}}
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, jobView(j))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, _ caller) error {
	j, err := s.st.Job(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, protocol.CodeNotFound, "no job %s", r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, jobView(j))
	return nil
}

// jobView turns a stored job into its wire form.
func jobView(j store.JobRecord) protocol.Job {
	out := protocol.Job{ID: j.ID, Runner: j.Runner, Kind: j.Kind, Command: j.Command, Timeout: protocol.Duration(j.Timeout),
		State: j.State, Attempts: j.Attempts, SubmittedBy: j.SubmittedBy, CreatedAt: j.CreatedAt, ClaimedAt: j.ClaimedAt,
		LeaseUntil: j.LeaseUntil, FinishedAt: j.FinishedAt}
	if len(j.Result) > 0 {
		var res protocol.JobResult
		if json.Unmarshal(j.Result, &res) == nil {
			out.Result = &res
		}
	}
	return out
}
