package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// clientConfigFlag is shared by every command that talks to a gateway.
func clientConfigFlag() *ucli.StringFlag {
	return &ucli.StringFlag{Name: "config", Usage: "client config written by 'leash login'",
		EnvVars: []string{"LEASH_CLIENT_CONFIG"}, Value: defaultClientConfigPath()}
}

// api loads the client config and builds an API client.
func (r *runtime) api(c *ucli.Context) (*apiClient, error) {
	cfg, err := loadClientConfig(c.String("config"))
	if err != nil {
		return nil, err
	}
	return newAPIClient(cfg)
}

func (r *runtime) runnerCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "runner",
		Usage: "registered runners, through the gateway API (needs 'leash login')",
		Subcommands: []*ucli.Command{
			{
				Name:  "list",
				Usage: "list runners: id, status, host, last seen, certificate expiry",
				Flags: []ucli.Flag{clientConfigFlag(),
					&ucli.StringFlag{Name: "status", Usage: "only this status: online, offline, revoked"},
					jsonFlag()},
				Action: r.runnerList,
			},
			{
				Name:      "show",
				Usage:     "show one runner in detail",
				ArgsUsage: "RUNNER-ID",
				Flags:     []ucli.Flag{clientConfigFlag(), jsonFlag()},
				Action:    r.runnerShow,
			},
			{
				Name:      "revoke",
				Usage:     "revoke a runner's certificates and close its live connections",
				ArgsUsage: "RUNNER-ID",
				Flags: []ucli.Flag{clientConfigFlag(),
					&ucli.StringFlag{Name: "reason", Usage: "RFC 5280 reason: " + strings.Join(ca.ReasonNames(), ", "), Value: "unspecified"},
					&ucli.StringFlag{Name: "text", Usage: "free text kept with the revocation"},
					jsonFlag()},
				Action: r.runnerRevoke,
			},
		},
	}
}

func (r *runtime) runnerList(c *ucli.Context) error {
	if c.Args().Present() {
		return usageError{fmt.Errorf("unexpected arguments %q", c.Args().Slice())}
	}
	switch st := c.String("status"); st {
	case "", protocol.RunnerOnline, protocol.RunnerOffline, protocol.RunnerRevoked:
	default:
		return usageError{fmt.Errorf("--status %q: use online, offline or revoked", st)}
	}
	api, err := r.api(c)
	if err != nil {
		return err
	}
	q := url.Values{}
	if st := c.String("status"); st != "" {
		q.Set("status", st)
	}
	var list protocol.RunnerList
	if _, err := api.call(ctx(c), http.MethodGet, "/v1/runners", q, nil, &list); err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, list)
	}
	w := r.out(c)
	fmt.Fprintln(w, "ID\tSTATUS\tHOST\tOS/ARCH\tVERSION\tLAST SEEN\tCERT NOT AFTER")
	for _, rn := range list.Runners {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\n", rn.ID, rn.Status, rn.Hostname, rn.OS, rn.Arch,
			rn.Version, ago(rn.LastSeen), stamp(rn.CertNotAfter))
	}
	return w.Flush()
}

func (r *runtime) runnerShow(c *ucli.Context) error {
	id, err := oneName(c, "RUNNER-ID")
	if err != nil {
		return err
	}
	api, err := r.api(c)
	if err != nil {
		return err
	}
	var rn protocol.Runner
	if _, err := api.call(ctx(c), http.MethodGet, "/v1/runners/"+url.PathEscape(id), nil, nil, &rn); err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, rn)
	}
	w := r.out(c)
	rows := [][2]string{
		{"id", rn.ID}, {"status", rn.Status}, {"hostname", rn.Hostname}, {"os/arch", rn.OS + "/" + rn.Arch},
		{"version", rn.Version}, {"labels", joinLabels(rn.Labels)}, {"capabilities", strings.Join(rn.Capabilities, ", ")},
		{"certificate", rn.CertSerial}, {"cert not after", stamp(rn.CertNotAfter)},
		{"first seen", stamp(rn.FirstSeen)}, {"last seen", stamp(rn.LastSeen) + " (" + ago(rn.LastSeen) + ")"},
		{"load1", fmt.Sprintf("%.2f", rn.Load1)}, {"memory", fmt.Sprintf("%d / %d MiB", rn.MemUsedBytes>>20, rn.MemTotalBytes>>20)},
	}
	for _, row := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", row[0], row[1])
	}
	return w.Flush()
}

func (r *runtime) runnerRevoke(c *ucli.Context) error {
	id, err := oneName(c, "RUNNER-ID")
	if err != nil {
		return err
	}
	if _, err := ca.ParseReason(c.String("reason")); err != nil {
		return usageError{err}
	}
	api, err := r.api(c)
	if err != nil {
		return err
	}
	var resp protocol.RevokeResponse
	req := protocol.RevokeRequest{Reason: c.String("reason"), Text: c.String("text")}
	if _, err := api.call(ctx(c), http.MethodPost, "/v1/runners/"+url.PathEscape(id)+"/revoke", nil, req, &resp); err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, resp)
	}
	fmt.Fprintf(c.App.Writer, "revoked runner %s: %d certificate(s) %s; %d live connection(s) closed\n",
		resp.Runner, len(resp.Serials), strings.Join(resp.Serials, ", "), resp.ClosedConnections)
	return nil
}

// oneName returns the single positional argument, a valid identity name.
func oneName(c *ucli.Context, what string) (string, error) {
	a, err := args(c)
	if err != nil {
		return "", err
	}
	if len(a) != 1 {
		return "", usageError{fmt.Errorf("want exactly one %s, got %d arguments", what, len(a))}
	}
	if err := leashtls.ValidName(a[0]); err != nil {
		return "", usageError{fmt.Errorf("%s: %w", what, err)}
	}
	return a[0], nil
}

func joinLabels(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// ago renders how long ago t was, coarsely, for tables.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}
