package cli

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/internal/keyfile"
	"github.com/leashpki/leash/protocol"
)

func (r *runtime) loginCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "login",
		Usage: "store a gateway URL and an operator identity for the runner and job commands",
		Description: "Either bring an operator certificate (leash cert issue client --role operator NAME)\n" +
			"with --cert, --key and --ca, or enroll one with a one-time token\n" +
			"(leash token create --role operator --name NAME) with --token-file.\n" +
			"The identity is checked against the gateway before the config is written.",
		ArgsUsage: "GATEWAY_URL",
		Flags: []ucli.Flag{
			clientConfigFlag(),
			&ucli.StringFlag{Name: "ca", Usage: "PEM root(s) that verify the gateway (with --cert/--key)"},
			&ucli.StringFlag{Name: "cert", Usage: "operator certificate PEM"},
			&ucli.StringFlag{Name: "key", Usage: "operator private key PEM (mode 0600)"},
			&ucli.StringFlag{Name: "token-file", Usage: "file holding a one-time operator token to enroll with"},
			&ucli.StringFlag{Name: "enroll-url", Usage: fmt.Sprintf("enrollment listener (default: the gateway host on port %d)", protocol.DefaultEnrollPort)},
			jsonFlag(),
		},
		Action: r.login,
	}
}

func (r *runtime) login(c *ucli.Context) error {
	a, err := args(c)
	if err != nil {
		return err
	}
	if len(a) != 1 {
		return usageError{fmt.Errorf("want exactly one GATEWAY_URL, got %d arguments", len(a))}
	}
	gw, err := parseGatewayURL(a[0])
	if err != nil {
		return usageError{err}
	}
	cfgPath, err := filepath.Abs(c.String("config"))
	if err != nil {
		return err
	}
	withFiles := c.String("cert") != "" || c.String("key") != "" || c.String("ca") != ""
	withToken := c.String("token-file") != ""
	switch {
	case withFiles && withToken:
		return usageError{errors.New("use either --cert/--key/--ca or --token-file, not both")}
	case withToken:
		return r.loginWithToken(c, gw.String(), cfgPath)
	case gw.Scheme == "http" && !withFiles:
		return r.saveLogin(c, cfgPath, clientConfig{Gateway: gw.String()}, nil)
	}
	var problems []error
	for _, f := range []string{"ca", "cert", "key"} {
		if c.String(f) == "" {
			problems = append(problems, fmt.Errorf("--%s is required", f))
		}
	}
	if len(problems) > 0 {
		return usageError{fmt.Errorf("%w (or enroll with --token-file)", errors.Join(problems...))}
	}
	cfg := clientConfig{Gateway: gw.String()}
	for _, p := range []struct {
		flag string
		dst  *string
	}{{"ca", &cfg.CA}, {"cert", &cfg.Cert}, {"key", &cfg.Key}} {
		abs, err := filepath.Abs(c.String(p.flag))
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("--%s: %w", p.flag, err)
		}
		*p.dst = abs
	}
	if _, err := keyfile.ReadPrivate(cfg.Key); err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	return r.saveLogin(c, cfgPath, cfg, nil)
}

// saveLogin checks cfg against the gateway (health, then an operator-only
// route) and only then writes the config and any enrolled files.
func (r *runtime) saveLogin(c *ucli.Context, path string, cfg clientConfig, files []outFile) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	api, err := newAPIClient(cfg)
	if err != nil {
		return err
	}
	var health protocol.Health
	if _, err := api.call(ctx(c), http.MethodGet, "/v1/health", nil, nil, &health); err != nil {
		return fmt.Errorf("gateway check failed, nothing written: %w", err)
	}
	var list protocol.RunnerList
	if _, err := api.call(ctx(c), http.MethodGet, "/v1/runners", nil, nil, &list); err != nil {
		return fmt.Errorf("operator check failed, nothing written: %w", err)
	}
	data, err := cfg.marshal()
	if err != nil {
		return err
	}
	if err := mkdirPrivate(filepath.Dir(path)); err != nil {
		return err
	}
	files = append(files, outFile{path: path, data: data, mode: 0o600})
	if err := writeFiles(files); err != nil {
		return err
	}
	if wantJSON(c) {
		return printJSON(c, struct {
			Config    string `json:"config"`
			Gateway   string `json:"gateway"`
			GatewayID string `json:"gateway_id"`
			Runners   int    `json:"runners"`
		}{path, cfg.Gateway, health.GatewayID, len(list.Runners)})
	}
	fmt.Fprintf(c.App.Writer, "logged in to %s (gateway %s, %d runners); config written to %s\n",
		cfg.Gateway, health.GatewayID, len(list.Runners), path)
	return nil
}

func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("config directory: %w", err)
	}
	return nil
}
