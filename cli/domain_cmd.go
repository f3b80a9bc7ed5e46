package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	ucli "github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/leashpki/leash/protocol"
)

func (r *runtime) domainCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "domain",
		Usage: "manage HTTP domains: which runner serves a public host name, behind which client policy",
		Subcommands: []*ucli.Command{
			{
				Name:   "list",
				Usage:  "list the served domains",
				Flags:  []ucli.Flag{clientConfigFlag(), jsonFlag()},
				Action: r.domainList,
			},
			{
				Name:      "set",
				Usage:     "serve a domain from a runner (create or replace)",
				ArgsUsage: "DOMAIN",
				Description: `The runner must declare the domain and its routes in its own config
(domains: {DOMAIN: [{target: http://127.0.0.1:8000}]}). The policy file is
YAML or JSON: allow_cidrs, time_ranges ("Mon-Fri 08:00-18:00", UTC),
credentials ([{user, hash}] with bcrypt or sha512-crypt hashes), realm,
trusted_forwarders, max_concurrent, max_body_bytes, read_timeout,
write_timeout, idle_timeout, stealth. A change applies to new requests
without dropping live connections.`,
				Flags: []ucli.Flag{
					clientConfigFlag(),
					&ucli.StringFlag{Name: "runner", Usage: "the runner that serves the domain", Required: true},
					&ucli.StringFlag{Name: "policy-file", Usage: "client policy (YAML or JSON); none: open to all"},
					jsonFlag(),
				},
				Action: r.domainSet,
			},
			{
				Name:      "rm",
				Usage:     "stop serving a domain",
				ArgsUsage: "DOMAIN",
				Flags:     []ucli.Flag{clientConfigFlag()},
				Action:    r.domainRemove,
			},
		},
	}
}

func (r *runtime) domainList(c *ucli.Context) error {
	api, err := r.api(c)
	if err != nil {
		return err
	}
	var list protocol.DomainList
	if _, err := api.call(ctx(c), http.MethodGet, "/v1/domains", nil, nil, &list); err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, list)
	}
	w := r.out(c)
	fmt.Fprintln(w, "DOMAIN\tRUNNER\tPOLICY")
	for _, d := range list.Domains {
		policy := string(d.Policy)
		if policy == "" || policy == "{}" || policy == "null" {
			policy = "open"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", d.Name, d.Runner, policy)
	}
	return w.Flush()
}

func (r *runtime) domainSet(c *ucli.Context) error {
	a, err := args(c)
	if err != nil {
		return err
	}
	if len(a) != 1 {
		return usageError{fmt.Errorf("want one DOMAIN, got %d arguments", len(a))}
	}
	policy := json.RawMessage("{}")
	if path := c.String("policy-file"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("--policy-file: %w", err)
		}
		if policy, err = yamlToJSON(b); err != nil {
			return fmt.Errorf("--policy-file %s: %w", path, err)
		}
	}
	api, err := r.api(c)
	if err != nil {
		return err
	}
	var d protocol.Domain
	in := protocol.Domain{Name: a[0], Runner: c.String("runner"), Policy: policy}
	if _, err := api.call(ctx(c), http.MethodPut, "/v1/domains/"+url.PathEscape(a[0]), nil, in, &d); err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, d)
	}
	fmt.Fprintf(c.App.Writer, "domain %s is served by runner %s\n", d.Name, d.Runner)
	return nil
}

func (r *runtime) domainRemove(c *ucli.Context) error {
	a, err := args(c)
	if err != nil {
		return err
	}
	if len(a) != 1 {
		return usageError{fmt.Errorf("want one DOMAIN, got %d arguments", len(a))}
	}
	api, err := r.api(c)
	if err != nil {
		return err
	}
	if _, err := api.call(ctx(c), http.MethodDelete, "/v1/domains/"+url.PathEscape(a[0]), nil, nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "domain %s removed\n", a[0])
	return nil
}

// yamlToJSON reads one YAML (or JSON) mapping with unique keys and
// returns it as JSON; unknown keys are the gateway's to refuse.
func yamlToJSON(b []byte) (json.RawMessage, error) {
	var v map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&v); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if v == nil {
		v = map[string]any{}
	}
	return json.Marshal(v)
}
