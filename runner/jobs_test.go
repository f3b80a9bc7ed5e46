package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/protocol"
)

// newTestAgent is an Agent in plain mode that never touches the network
// for exec and info jobs.
func newTestAgent(t *testing.T, commands map[string][]string) *Agent {
	t.Helper()
	a, err := New(Config{Name: "runner-1", Gateway: "http://127.0.0.1:1", StateDir: t.TempDir(),
		JobTimeout: time.Minute, Commands: commands}, WithVersion("test"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// output returns the job.output events queued for job, as stream: data.
func output(a *Agent, job string) []string {
	var out []string
	for _, e := range a.events.take(maxQueuedEvents) {
		if e.Kind == protocol.EventJobOutput && e.JobID == job {
			out = append(out, e.Stream+": "+e.Data)
		}
	}
	return out
}

func TestScanLinesOrChunks(t *testing.T) {
	const limit = protocol.MaxEventDataBytes
	long := strings.Repeat("x", 2*limit+100)
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"lines", "a\nb\n", []string{"a", "b"}},
		{"last line without newline", "a\nb", []string{"a", "b"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"empty lines", "\n\na\n", []string{"", "", "a"}},
		{"longest line that fits", strings.Repeat("y", limit-1) + "\nz\n", []string{strings.Repeat("y", limit-1), "z"}},
		{"long line in chunks", "short\n" + long + "\nlast",
			[]string{"short", long[:limit], long[limit : 2*limit], long[2*limit:], "last"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// As pump sets it up: the buffer never grows past the limit.
			sc := bufio.NewScanner(strings.NewReader(tt.in))
			sc.Buffer(make([]byte, 0, 4096), protocol.MaxEventDataBytes)
			sc.Split(scanLinesOrChunks)
			var got []string
			for sc.Scan() {
				got = append(got, sc.Text())
			}
			if err := sc.Err(); err != nil {
				t.Fatalf("scan: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %d tokens %.60q, want %d %.60q", len(got), got, len(tt.want), tt.want)
			}
		})
	}
}

func TestScanLinesOrChunksAsksForMore(t *testing.T) {
	adv, tok, err := scanLinesOrChunks([]byte("no newline yet"), false)
	if adv != 0 || tok != nil || err != nil {
		t.Errorf("a short partial line: (%d, %q, %v), want a request for more data", adv, tok, err)
	}
	full := []byte(strings.Repeat("x", protocol.MaxEventDataBytes+5))
	adv, tok, err = scanLinesOrChunks(full, false)
	if adv != protocol.MaxEventDataBytes || len(tok) != protocol.MaxEventDataBytes || err != nil {
		t.Errorf("a full buffer: (%d, %d bytes, %v), want a chunk of %d", adv, len(tok), err, protocol.MaxEventDataBytes)
	}
}

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"nothing", 10, nil, ""},
		{"fits", 10, []string{"abc", "defgh"}, "abc\ndefgh\n"},
		{"keeps the last bytes", 10, []string{"abc", "defgh", "ij"}, "\ndefgh\nij\n"},
		{"one long line", 10, []string{"0123456789abc"}, "456789abc\n"},
		{"a cut rune is dropped", 4, []string{"€x"}, "x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := &tailBuffer{max: tt.max}
			for _, w := range tt.writes {
				tb.write(w)
			}
			if got := tb.String(); got != tt.want {
				t.Errorf("tail = %q, want %q", got, tt.want)
			}
			if len(tb.b) > tt.max {
				t.Errorf("buffer holds %d bytes, over its max %d", len(tb.b), tt.max)
			}
		})
	}
}

func TestRunJobUndeclaredCommandRunsNothing(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	a := newTestAgent(t, map[string][]string{
		"touch-marker": {"touch", marker},
		"echo":         {"echo", "hi"},
	})
	for _, name := range []string{"rm-rf", "", marker} {
		res := a.runJob(context.Background(), protocol.Job{ID: "j1", Kind: protocol.JobExec, Command: name})
		if res.OK || res.ExitCode != -1 {
			t.Errorf("exec %q: %+v, want a failure", name, res)
		}
		if !strings.Contains(res.Error, "not declared") || !strings.Contains(res.Error, "(declared: echo, touch-marker)") {
			t.Errorf("exec %q: error %q does not list the declared commands", name, res.Error)
		}
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("a declared command ran: %v", err)
	}
	if n := a.events.len(); n != 0 {
		t.Errorf("%d events queued for jobs that never ran", n)
	}
}

func TestRunJobExec(t *testing.T) {
	tests := []struct {
		name       string
		argv       []string
		ok         bool
		exitCode   int
		errWant    string
		outputWant []string // substrings of the result's Output
		events     []string // job.output events, in any order
	}{
		{"success", []string{"echo", "hello"}, true, 0, "", []string{"hello\n"}, []string{"stdout: hello"}},
		{"exit code and both streams", []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, false, 3, "exit status 3",
			[]string{"out\n", "err\n"}, []string{"stdout: out", "stderr: err"}},
		{"program not found", []string{"/does/not/exist"}, false, -1, "start:", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAgent(t, map[string][]string{"cmd": tt.argv})
			res := a.runJob(context.Background(), protocol.Job{ID: "job-1", Kind: protocol.JobExec, Command: "cmd"})
			if res.OK != tt.ok || res.ExitCode != tt.exitCode {
				t.Errorf("result %+v, want ok=%v exit code %d", res, tt.ok, tt.exitCode)
			}
			if !strings.Contains(res.Error, tt.errWant) || (tt.errWant == "") != (res.Error == "") {
				t.Errorf("error %q, want %q", res.Error, tt.errWant)
			}
			for _, w := range tt.outputWant {
				if !strings.Contains(res.Output, w) {
					t.Errorf("output %q lacks %q", res.Output, w)
				}
			}
			got := output(a, "job-1")
			slices.Sort(got)
			want := slices.Clone(tt.events)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("job.output events %q, want %q", got, want)
			}
		})
	}
}

func TestRunJobExecLongLineStreamsInChunks(t *testing.T) {
	const n = 2*protocol.MaxEventDataBytes + 1000
	script := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x; echo; echo done", n)
	a := newTestAgent(t, map[string][]string{"long": {"sh", "-c", script}})
	res := a.runJob(context.Background(), protocol.Job{ID: "job-1", Kind: protocol.JobExec, Command: "long"})
	if !res.OK {
		t.Fatalf("result %+v", res)
	}
	var total int
	var chunks int
	for _, e := range output(a, "job-1") {
		data := strings.TrimPrefix(e, "stdout: ")
		if len(data) > protocol.MaxEventDataBytes {
			t.Errorf("an event carries %d bytes, over %d", len(data), protocol.MaxEventDataBytes)
		}
		if strings.Trim(data, "x") == "" {
			total += len(data)
			chunks++
		}
	}
	if total != n || chunks != 3 {
		t.Errorf("the long line arrived as %d bytes in %d events, want %d in 3", total, chunks, n)
	}
	if !strings.HasSuffix(res.Output, "x\ndone\n") {
		t.Errorf("output tail %q", res.Output[max(0, len(res.Output)-20):])
	}
}

// A Config built in code may leave JobTimeout zero; jobs must then get the
// default rather than a deadline that has already passed.
func TestRunJobZeroJobTimeoutMeansDefault(t *testing.T) {
	a, err := New(Config{Name: "runner-1", Gateway: "http://127.0.0.1:1", StateDir: t.TempDir(),
		Commands: map[string][]string{"echo": {"echo", "hi"}}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if a.cfg.JobTimeout != DefaultJobTimeout {
		t.Errorf("job timeout %v, want the default %v", a.cfg.JobTimeout, DefaultJobTimeout)
	}
	if res := a.runJob(context.Background(), protocol.Job{ID: "job-1", Kind: protocol.JobExec, Command: "echo"}); !res.OK {
		t.Errorf("result %+v, want success", res)
	}
}

func TestRunJobTimeout(t *testing.T) {
	a := newTestAgent(t, map[string][]string{"sleep": {"sleep", "5"}})
	start := time.Now()
	res := a.runJob(context.Background(), protocol.Job{ID: "job-1", Kind: protocol.JobExec, Command: "sleep",
		Timeout: protocol.Duration(200 * time.Millisecond)})
	elapsed := time.Since(start)
	if res.OK || res.ExitCode != -1 || res.Error != "timed out" {
		t.Errorf("result %+v, want a time-out", res)
	}
	if elapsed > 3*time.Second {
		t.Errorf("the job ended after %v, want soon after its 200ms timeout", elapsed)
	}
}

func TestRunJobCancelled(t *testing.T) {
	a := newTestAgent(t, map[string][]string{"wait": {"sh", "-c", "echo started; exec sleep 5"}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: deferred calls run last first
	defer cancel()
	results := make(chan protocol.JobResult, 1)
	wg.Go(func() {
		results <- a.runJob(ctx, protocol.Job{ID: "job-1", Kind: protocol.JobExec, Command: "wait"})
	})
	// The first output event says the process runs.
	select {
	case <-a.events.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the job produced no output")
	}
	cancel()
	select {
	case res := <-results:
		if res.OK || res.ExitCode != -1 || !strings.Contains(res.Error, "cancelled") {
			t.Errorf("result %+v, want a cancellation", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not end when its context was cancelled")
	}
}

func TestRunJobOtherKinds(t *testing.T) {
	a := newTestAgent(t, map[string][]string{"b-cmd": {"true"}, "a-cmd": {"true"}})
	tests := []struct {
		name    string
		kind    string
		errWant string
	}{
		{"unknown kind", "reboot", `unknown job kind "reboot"`},
		{"empty kind", "", `unknown job kind ""`},
		{"rotate without a certificate", protocol.JobRotate, "rotate: this runner does not rotate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := a.runJob(context.Background(), protocol.Job{ID: "job-1", Kind: tt.kind})
			if res.OK || res.ExitCode != -1 || !strings.Contains(res.Error, tt.errWant) {
				t.Errorf("result %+v, want a failure mentioning %q", res, tt.errWant)
			}
		})
	}
}

func TestRunJobInfo(t *testing.T) {
	a := newTestAgent(t, map[string][]string{"b-cmd": {"true"}, "a-cmd": {"true"}})
	res := a.runJob(context.Background(), protocol.Job{ID: "job-1", Kind: protocol.JobInfo})
	if !res.OK {
		t.Fatalf("info job: %+v", res)
	}
	var info protocol.HostInfo
	if err := json.Unmarshal(res.Data, &info); err != nil {
		t.Fatalf("info data %s: %v", res.Data, err)
	}
	if info.OS != runtime.GOOS || info.Arch != runtime.GOARCH || info.CPUs != runtime.NumCPU() || info.Version != "test" {
		t.Errorf("host info %+v", info)
	}
	if !slices.Equal(info.Commands, []string{"a-cmd", "b-cmd"}) {
		t.Errorf("commands %v, want them sorted", info.Commands)
	}
}
