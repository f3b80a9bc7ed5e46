package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/leashpki/leash/protocol"
)

// work is one job worker: it offers itself as idle, runs the job it is
// given and reports the result, until ctx ends.
func (a *Agent) work(ctx context.Context) error {
	inbox := make(chan protocol.Job, 1)
	for {
		select {
		case a.idle <- inbox:
		case <-ctx.Done():
			return nil
		}
		var job protocol.Job
		select {
		case job = <-inbox:
		case <-ctx.Done():
			return nil
		}
		a.events.add(protocol.Event{Kind: protocol.EventJobState, JobID: job.ID, Level: "info", Message: "started"})
		res := a.runJob(ctx, job)
		state := "finished"
		if !res.OK {
			state = "failed: " + res.Error
		}
		a.events.add(protocol.Event{Kind: protocol.EventJobState, JobID: job.ID, Level: "info", Message: state})
		a.report(ctx, job, res)
	}
}

// report sends a job's result, retrying until the gateway takes it or says
// it never will (the job was re-queued to another attempt, finished, or is
// unknown). A result is reported once.
func (a *Agent) report(ctx context.Context, job protocol.Job, res protocol.JobResult) {
	bo := backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second}
	for {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		status, err := a.call(rctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(job.ID)+"/result", res, "", nil)
		cancel()
		switch {
		case err == nil:
			a.log.Info("job finished", "job", job.ID, "ok", res.OK, "exit_code", res.ExitCode)
			return
		case status == http.StatusConflict || status == http.StatusNotFound || status == http.StatusBadRequest ||
			status == http.StatusRequestEntityTooLarge:
			a.log.Warn("gateway refused the job result; not retrying", "job", job.ID, "err", err)
			return
		case ctx.Err() != nil:
			return
		}
		a.log.Warn("reporting job result failed; retrying", "job", job.ID, "err", err)
		if bo.Wait(ctx) != nil {
			return
		}
	}
}

// runJob runs one job with its timeout and returns its result; it never
// panics the runner on a bad job.
func (a *Agent) runJob(ctx context.Context, job protocol.Job) protocol.JobResult {
	timeout := a.cfg.JobTimeout
	if t := job.Timeout.D(); t > 0 {
		timeout = t
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch job.Kind {
	case protocol.JobInfo:
		return a.infoJob()
	case protocol.JobRotate:
		if err := a.renewNow(ctx); err != nil {
			return protocol.JobResult{ExitCode: -1, Error: "rotate: " + err.Error()}
		}
		return protocol.JobResult{OK: true, Output: "renewed: serial " + a.Certificate().SerialNumber.String()}
	case protocol.JobExec:
		argv, ok := a.cfg.Commands[job.Command]
		if !ok {
			return protocol.JobResult{ExitCode: -1, Error: fmt.Sprintf("command %q is not declared in this runner's config (declared: %s)",
				job.Command, strings.Join(a.commandNames(), ", "))}
		}
		return a.execJob(ctx, job, argv)
	default:
		return protocol.JobResult{ExitCode: -1, Error: fmt.Sprintf("unknown job kind %q", job.Kind)}
	}
}

func (a *Agent) commandNames() []string {
	names := make([]string, 0, len(a.cfg.Commands))
	for n := range a.cfg.Commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (a *Agent) infoJob() protocol.JobResult {
	host, _ := os.Hostname()
	info := protocol.HostInfo{Hostname: host, OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
		Version: a.version, Uptime: protocol.Duration(time.Duration(uptime() * float64(time.Second))), Commands: a.commandNames()}
	data, err := json.Marshal(info)
	if err != nil {
		return protocol.JobResult{ExitCode: -1, Error: err.Error()}
	}
	return protocol.JobResult{OK: true, Data: data}
}

// execJob runs a declared command without a shell. Its output streams out
// as job.output events line by line; the result carries the tail.
func (a *Agent) execJob(ctx context.Context, job protocol.Job, argv []string) protocol.JobResult {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 2 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return protocol.JobResult{ExitCode: -1, Error: err.Error()}
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return protocol.JobResult{ExitCode: -1, Error: err.Error()}
	}
	if err := cmd.Start(); err != nil {
		return protocol.JobResult{ExitCode: -1, Error: "start: " + err.Error()}
	}
	tail := &tailBuffer{max: protocol.MaxJobOutputBytes}
	var wg sync.WaitGroup
	for stream, r := range map[string]io.Reader{"stdout": stdout, "stderr": stderr} {
		wg.Go(func() { a.pump(job.ID, stream, r, tail) })
	}
	wg.Wait()
	err = cmd.Wait()
	res := protocol.JobResult{OK: err == nil, Output: tail.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		res.ExitCode, res.Error = -1, "cancelled: the runner is stopping"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			res.Error = "timed out"
		}
	case errors.As(err, &exitErr):
		res.ExitCode, res.Error = exitErr.ExitCode(), err.Error()
	default:
		res.ExitCode, res.Error = -1, err.Error()
	}
	return res
}

// pump turns one output stream into job.output events, one per line.
func (a *Agent) pump(jobID, stream string, r io.Reader, tail *tailBuffer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), protocol.MaxEventDataBytes+2) // a full line plus \r\n
	sc.Split(scanLinesOrChunks)
	for sc.Scan() {
		line := sc.Text()
		tail.write(line)
		a.events.add(protocol.Event{Kind: protocol.EventJobOutput, JobID: jobID, Stream: stream, Data: line})
	}
	// Drain whatever is left so the process never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// scanLinesOrChunks splits at newlines, and cuts a line that would not fit
// the buffer into chunks instead of failing.
func scanLinesOrChunks(data []byte, atEOF bool) (int, []byte, error) {
	adv, tok, err := bufio.ScanLines(data, atEOF)
	if adv == 0 && tok == nil && err == nil && len(data) >= protocol.MaxEventDataBytes {
		return protocol.MaxEventDataBytes, data[:protocol.MaxEventDataBytes], nil
	}
	return adv, tok, err
}

// tailBuffer keeps the last max bytes of the output lines written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) write(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, line...)
	t.b = append(t.b, '\n')
	if over := len(t.b) - t.max; over > 0 {
		t.b = t.b[over:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToValidUTF8(string(t.b), "")
}
