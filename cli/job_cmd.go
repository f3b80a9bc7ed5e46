package cli

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/protocol"
)

func (r *runtime) jobCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "job",
		Usage: "jobs for runners, through the gateway API (needs 'leash login')",
		Subcommands: []*ucli.Command{
			{
				Name:      "submit",
				Usage:     "queue a job for one runner: info, exec (a command the runner declares by name) or rotate",
				ArgsUsage: "RUNNER-ID KIND [COMMAND]",
				Flags: []ucli.Flag{clientConfigFlag(),
					&ucli.DurationFlag{Name: "timeout", Usage: "bound on the run on the runner (0 = runner default)"},
					&ucli.DurationFlag{Name: "wait", Usage: "wait up to this long for the result and print it"},
					jsonFlag()},
				Action: r.jobSubmit,
			},
			{
				Name:      "get",
				Usage:     "show one job with its result",
				ArgsUsage: "JOB-ID",
				Flags:     []ucli.Flag{clientConfigFlag(), jsonFlag()},
				Action:    r.jobGet,
			},
			{
				Name:  "list",
				Usage: "list jobs, newest first",
				Flags: []ucli.Flag{clientConfigFlag(),
					&ucli.StringFlag{Name: "runner", Usage: "only jobs of this runner"},
					&ucli.StringFlag{Name: "state", Usage: "only this state: queued, running, succeeded, failed"},
					&ucli.IntFlag{Name: "limit", Usage: "at most this many", Value: 50},
					jsonFlag()},
				Action: r.jobList,
			},
		},
	}
}

func (r *runtime) jobSubmit(c *ucli.Context) error {
	a, err := args(c)
	if err != nil {
		return err
	}
	if len(a) < 2 || len(a) > 3 {
		return usageError{fmt.Errorf("want RUNNER-ID KIND [COMMAND], got %d arguments", len(a))}
	}
	sub := protocol.JobSubmit{Runner: a[0], Kind: a[1], Timeout: protocol.Duration(c.Duration("timeout"))}
	switch sub.Kind {
	case protocol.JobExec:
		if len(a) != 3 {
			return usageError{errors.New("exec needs the name of a command the runner declares, e.g.: leash job submit web-1 exec uptime")}
		}
		sub.Command = a[2]
	case protocol.JobInfo, protocol.JobRotate:
		if len(a) == 3 {
			return usageError{fmt.Errorf("%s takes no command", sub.Kind)}
		}
	default:
		return usageError{fmt.Errorf("unknown job kind %q: use info, exec or rotate", sub.Kind)}
	}
	if c.Duration("timeout") < 0 || c.Duration("wait") < 0 {
		return usageError{errors.New("--timeout and --wait must not be negative")}
	}
	api, err := r.api(c)
	if err != nil {
		return err
	}
	var job protocol.Job
	if _, err := api.call(ctx(c), http.MethodPost, "/v1/jobs", nil, sub, &job); err != nil {
		return err
	}
	if wait := c.Duration("wait"); wait > 0 {
		job, err = r.waitJob(c, api, job.ID, wait)
		if err != nil {
			return err
		}
	}
	if wantJSON(c) {
		return printJSON(c, job)
	}
	return r.printJob(c, job)
}

// waitJob polls the job until it finishes or wait passes.
func (r *runtime) waitJob(c *ucli.Context, api *apiClient, id string, wait time.Duration) (protocol.Job, error) {
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var job protocol.Job
		if _, err := api.call(ctx(c), http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, nil, &job); err != nil {
			return job, err
		}
		if job.State == protocol.JobSucceeded || job.State == protocol.JobFailed {
			return job, nil
		}
		if time.Now().After(deadline) {
			return job, fmt.Errorf("job %s is still %s after %s; check later with: leash job get %s", id, job.State, wait, id)
		}
		select {
		case <-ctx(c).Done():
			return job, ctx(c).Err()
		case <-tick.C:
		}
	}
}

func (r *runtime) jobGet(c *ucli.Context) error {
	a, err := args(c)
	if err != nil {
		return err
	}
	if len(a) != 1 || a[0] == "" {
		return usageError{fmt.Errorf("want exactly one JOB-ID, got %d arguments", len(a))}
	}
	api, err := r.api(c)
	if err != nil {
		return err
	}
	var job protocol.Job
	if _, err := api.call(ctx(c), http.MethodGet, "/v1/jobs/"+url.PathEscape(a[0]), nil, nil, &job); err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, job)
	}
	return r.printJob(c, job)
}

func (r *runtime) printJob(c *ucli.Context, job protocol.Job) error {
	w := r.out(c)
	what := job.Kind
	if job.Command != "" {
		what += " " + job.Command
	}
	rows := [][2]string{{"id", job.ID}, {"runner", job.Runner}, {"job", what}, {"state", job.State},
		{"attempts", strconv.Itoa(job.Attempts)}, {"submitted", stamp(job.CreatedAt)}, {"finished", stamp(job.FinishedAt)}}
	if res := job.Result; res != nil {
		rows = append(rows, [2]string{"exit code", strconv.Itoa(res.ExitCode)})
		if res.Error != "" {
			rows = append(rows, [2]string{"error", res.Error})
		}
	}
	for _, row := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", row[0], row[1])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if res := job.Result; res != nil {
		if res.Output != "" {
			fmt.Fprintf(c.App.Writer, "--- output ---\n%s", res.Output)
			if res.Output[len(res.Output)-1] != '\n' {
				fmt.Fprintln(c.App.Writer)
			}
		}
		if len(res.Data) > 0 {
			fmt.Fprintf(c.App.Writer, "--- data ---\n%s\n", res.Data)
		}
	}
	return nil
}

func (r *runtime) jobList(c *ucli.Context) error {
	if c.Args().Present() {
		return usageError{fmt.Errorf("unexpected arguments %q", c.Args().Slice())}
	}
	switch st := c.String("state"); st {
	case "", protocol.JobQueued, protocol.JobRunning, protocol.JobSucceeded, protocol.JobFailed:
	default:
		return usageError{fmt.Errorf("--state %q: use queued, running, succeeded or failed", st)}
	}
	if c.Int("limit") < 1 {
		return usageError{errors.New("--limit must be at least 1")}
	}
	api, err := r.api(c)
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(c.Int("limit"))}}
	for _, k := range []string{"runner", "state"} {
		if v := c.String(k); v != "" {
			q.Set(k, v)
		}
	}
	var list protocol.JobList
	if _, err := api.call(ctx(c), http.MethodGet, "/v1/jobs", q, nil, &list); err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, list)
	}
	w := r.out(c)
	fmt.Fprintln(w, "ID\tRUNNER\tJOB\tSTATE\tATTEMPTS\tSUBMITTED\tFINISHED")
	for _, j := range list.Jobs {
		what := j.Kind
		if j.Command != "" {
			what += " " + j.Command
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", j.ID, j.Runner, what, j.State, j.Attempts, stamp(j.CreatedAt), stamp(j.FinishedAt))
	}
	return w.Flush()
}
