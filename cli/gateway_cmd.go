package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/gateway/store/sqlitestore"
	leashtls "github.com/leashpki/leash/tls"
)

// gatewayFile is the YAML config file of 'leash gateway serve'. Keys are
// the flag names in snake_case; unknown keys are refused.
type gatewayFile struct {
	ID                string        `yaml:"id"`
	Listen            string        `yaml:"listen"`
	EnrollListen      string        `yaml:"enroll_listen"`
	MetricsListen     string        `yaml:"metrics_listen"`
	PublicListen      string        `yaml:"public_listen"`
	PublicTLSListen   string        `yaml:"public_tls_listen"`
	Mode              string        `yaml:"mode"`
	TLSCert           string        `yaml:"tls_cert"`
	TLSKey            string        `yaml:"tls_key"`
	TLSClientCA       string        `yaml:"tls_client_ca"`
	MetricsClientCA   string        `yaml:"metrics_client_ca"`
	Hostnames         []string      `yaml:"hostnames"`
	DatabaseURL       string        `yaml:"database_url"`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	OfflineAfter      time.Duration `yaml:"offline_after"`
	JobLease          time.Duration `yaml:"job_lease"`
	LogLevel          string        `yaml:"log_level"`
	AllowInsecure     bool          `yaml:"allow_insecure_remote"`
	Expose            []string      `yaml:"expose"`
	PublicCerts       []string      `yaml:"public_certs"`
	DomainsDir        string        `yaml:"domains_dir"`
	ACMEDirectory     string        `yaml:"acme_directory"`
	ACMEEmail         string        `yaml:"acme_email"`
	ACMECARoots       string        `yaml:"acme_ca_roots"`
	ACMEAgreeTOS      bool          `yaml:"acme_agree_tos"`
	ACMEEABKeyID      string        `yaml:"acme_eab_key_id"`
	ACMEEABMACKeyFile string        `yaml:"acme_eab_mac_key_file"`
	UI                bool          `yaml:"ui"`
	UIPrefix          string        `yaml:"ui_prefix"`
	UITrustedProxies  []string      `yaml:"ui_trusted_proxies"`
	UIRunnerBinary    string        `yaml:"ui_runner_binary"`
}

func (r *runtime) gatewayCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "gateway",
		Usage: "run the gateway",
		Subcommands: []*ucli.Command{{
			Name:  "serve",
			Usage: "serve the runner and operator API, enrollment and metrics",
			Description: `Modes, as in FANGS: no certificate flags and --mode plain → plain HTTP
(loopback only); --tls-cert/--tls-key → HTTPS; plus --tls-client-ca → mTLS.
--mode mtls without files uses the embedded CA for both the server
certificate (issued and renewed in-process) and client verification.

The HTTP domains' HTTPS certificates (--public-tls-listen) come from
--public-cert files by SNI first, then, on demand and for served domains
only, from the ACME CA given by --acme-directory (http-01 answered on
--public-listen, tls-alpn-01 on --public-tls-listen) or, without it, from
the embedded CA.

Settings come from flags, then LEASH_* variables, then --config (YAML,
keys as the flags in snake_case), then defaults. Logs are JSON on stderr.`,
			Flags:  gatewayFlags(),
			Action: r.gatewayServe,
		}},
	}
}

func gatewayFlags() []ucli.Flag {
	env := func(name string) []string {
		return []string{"LEASH_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
	}
	str := func(name, usage string) *ucli.StringFlag {
		return &ucli.StringFlag{Name: name, Usage: usage, EnvVars: env(name)}
	}
	dur := func(name, usage string) *ucli.DurationFlag {
		return &ucli.DurationFlag{Name: name, Usage: usage, EnvVars: env(name)}
	}
	return []ucli.Flag{
		&ucli.StringFlag{Name: "config", Usage: "YAML config file", EnvVars: []string{"LEASH_GATEWAY_CONFIG"}},
		str("id", "replica id in answers and logs (default: host name)"),
		str("listen", "API address (default "+gateway.DefaultListen+")"),
		str("enroll-listen", "enrollment address, or off (default "+gateway.DefaultEnrollListen+")"),
		str("metrics-listen", "separate mTLS /metrics address for Prometheus (optional)"),
		str("public-listen", "HTTP address serving the HTTP domains (optional)"),
		str("public-tls-listen", "HTTPS address serving the HTTP domains, certificates from --public-cert files, then ACME or the embedded CA (optional)"),
		str("mode", "plain, https or mtls (default: derived from the certificate flags)"),
		str("tls-cert", "server certificate chain PEM (default: issued by the embedded CA)"),
		str("tls-key", "server key PEM"),
		str("tls-client-ca", "client CA bundle PEM; implies mtls (default in mtls: the embedded CA)"),
		str("metrics-client-ca", "client CA for --metrics-listen (default: the embedded CA)"),
		&ucli.StringSliceFlag{Name: "hostname", Usage: "name or IP for the embedded server certificate (repeatable)", EnvVars: []string{"LEASH_HOSTNAMES"}},
		str("domains-dir", "directory of domain files (YAML/JSON: name, runner, policy) kept in sync (GitOps)"),
		str("database-url", "postgres://… for PostgreSQL (default: SQLite file in --data-dir)"),
		dur("heartbeat-interval", "how often runners heartbeat (default 5s)"),
		dur("offline-after", "a runner is offline after this long without a heartbeat (default 10s)"),
		dur("job-lease", "how long a claimed job stays leased before it is queued again (default 2m)"),
		str("log-level", "debug, info, warn or error (default info)"),
		&ucli.StringSliceFlag{Name: "public-cert", Usage: "certificate for HTTP domains, CERT.pem:KEY.pem, chosen by SNI before ACME or the embedded CA (repeatable)", EnvVars: []string{"LEASH_PUBLIC_CERTS"}},
		str("acme-directory", "ACME directory URL (https://): public certificates from this CA instead of the embedded CA, on demand for served domains"),
		str("acme-email", "contact email of the ACME account (optional)"),
		str("acme-ca-roots", "PEM roots for a private ACME CA's HTTPS certificate (default: system roots)"),
		&ucli.BoolFlag{Name: "acme-agree-tos", Usage: "agree to the ACME CA's terms of service (required with --acme-directory)", EnvVars: env("acme-agree-tos")},
		str("acme-eab-key-id", "external account binding key id, for CAs that require one"),
		str("acme-eab-mac-key-file", "file holding the base64url external account binding HMAC key"),
		&ucli.StringSliceFlag{Name: "expose", Usage: "publish a runner's declared service on a gateway port: LISTEN=RUNNER/SERVICE (repeatable)", EnvVars: []string{"LEASH_EXPOSE"}},
		&ucli.BoolFlag{Name: "ui", Usage: "serve the browser UI under /ui/ on the API listener, for a reverse proxy with a ui-proxy certificate (mtls mode)", EnvVars: env("ui")},
		str("ui-prefix", "path prefix of the UI's links when the proxy sends no trusted X-Forwarded-Prefix (default /ui)"),
		&ucli.StringSliceFlag{Name: "ui-trusted-proxies", Usage: "CIDRs whose X-Forwarded-Proto/-Host/-Prefix the UI honours (repeatable or comma-separated)", EnvVars: env("ui-trusted-proxies")},
		str("ui-runner-binary", "leash-runner binary whose SHA-256 the UI shows with the install snippets (default: shown as unknown)"),
		&ucli.BoolFlag{Name: "allow-insecure-remote", Usage: "allow plain mode on a non-loopback address", EnvVars: env("allow-insecure-remote")},
	}
}

// gatewaySettings merges flags and env (urfave reports both as set) over
// the config file.
func gatewaySettings(c *ucli.Context) (gateway.Config, gatewayFile, error) {
	var f gatewayFile
	if path := c.String("config"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return gateway.Config{}, f, fmt.Errorf("gateway config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
			return gateway.Config{}, f, fmt.Errorf("gateway config %s: %w", path, err)
		}
	}
	strs := map[string]*string{"id": &f.ID, "listen": &f.Listen, "enroll-listen": &f.EnrollListen,
		"metrics-listen": &f.MetricsListen, "public-listen": &f.PublicListen, "public-tls-listen": &f.PublicTLSListen, "mode": &f.Mode, "tls-cert": &f.TLSCert, "tls-key": &f.TLSKey,
		"tls-client-ca": &f.TLSClientCA, "metrics-client-ca": &f.MetricsClientCA, "database-url": &f.DatabaseURL, "domains-dir": &f.DomainsDir,
		"log-level": &f.LogLevel, "acme-directory": &f.ACMEDirectory, "acme-email": &f.ACMEEmail, "acme-ca-roots": &f.ACMECARoots,
		"acme-eab-key-id": &f.ACMEEABKeyID, "acme-eab-mac-key-file": &f.ACMEEABMACKeyFile,
		"ui-prefix": &f.UIPrefix, "ui-runner-binary": &f.UIRunnerBinary}
	for name, dst := range strs {
		if c.IsSet(name) {
			*dst = c.String(name)
		}
	}
	durs := map[string]*time.Duration{"heartbeat-interval": &f.HeartbeatInterval, "offline-after": &f.OfflineAfter,
		"job-lease": &f.JobLease}
	for name, dst := range durs {
		if c.IsSet(name) {
			*dst = c.Duration(name)
		}
	}
	lists := map[string]*[]string{"hostname": &f.Hostnames, "public-cert": &f.PublicCerts, "expose": &f.Expose,
		"ui-trusted-proxies": &f.UITrustedProxies}
	for name, dst := range lists {
		if c.IsSet(name) {
			*dst = c.StringSlice(name)
		}
	}
	bools := map[string]*bool{"allow-insecure-remote": &f.AllowInsecure, "ui": &f.UI, "acme-agree-tos": &f.ACMEAgreeTOS}
	for name, dst := range bools {
		if c.IsSet(name) {
			*dst = c.Bool(name)
		}
	}
	var expose []gateway.Exposure
	for _, x := range f.Expose {
		e, err := gateway.ParseExposure(x)
		if err != nil {
			return gateway.Config{}, f, usageError{err}
		}
		expose = append(expose, e)
	}
	mode := leashtls.Mode(f.Mode)
	if f.Mode != "" {
		m, err := leashtls.ParseMode(f.Mode)
		if err != nil {
			return gateway.Config{}, f, usageError{err}
		}
		mode = m
	}
	cfg := gateway.Config{ID: f.ID, Version: version, Listen: f.Listen, EnrollListen: f.EnrollListen,
		MetricsListen: f.MetricsListen, PublicListen: f.PublicListen, PublicTLSListen: f.PublicTLSListen, Mode: mode, TLSCert: f.TLSCert, TLSKey: f.TLSKey, TLSClientCA: f.TLSClientCA,
		MetricsClientCA: f.MetricsClientCA, Hostnames: f.Hostnames, HeartbeatInterval: f.HeartbeatInterval,
		OfflineAfter: f.OfflineAfter, JobLease: f.JobLease, AllowInsecureRemote: f.AllowInsecure, Expose: expose, PublicCerts: f.PublicCerts, DomainsDir: f.DomainsDir,
		ACME: gateway.ACMEConfig{Directory: f.ACMEDirectory, Email: f.ACMEEmail, CARoots: f.ACMECARoots, AgreeTOS: f.ACMEAgreeTOS,
			EABKeyID: f.ACMEEABKeyID, EABMACKeyFile: f.ACMEEABMACKeyFile},
		UI: gateway.UIConfig{Enabled: f.UI, Prefix: f.UIPrefix, TrustedProxies: f.UITrustedProxies, RunnerBinary: f.UIRunnerBinary}}
	switch f.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return cfg, f, usageError{fmt.Errorf("log level %q: debug, info, warn or error", f.LogLevel)}
	}
	return cfg, f, cfg.Validate()
}

func jsonLogger(w io.Writer, level string) *slog.Logger {
	l := slog.LevelInfo
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func (r *runtime) gatewayServe(c *ucli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	if c.Args().Len() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", c.Args().Slice())}
	}
	cfg, f, err := gatewaySettings(c)
	if err != nil {
		return err
	}
	if f.DatabaseURL == "" {
		// 'leash --database-url … gateway serve': the global flag, which
		// the CA commands use too.
		lineage := c.Lineage()
		f.DatabaseURL = lineage[len(lineage)-1].String("database-url")
	}
	log := jsonLogger(c.App.ErrWriter, f.LogLevel)
	authority, st, closeAll, err := r.openGatewayCA(c, f.DatabaseURL, log)
	if err != nil {
		return err
	}
	defer closeAll()
	srv, err := gateway.New(cfg, authority, st, gateway.WithLogger(log))
	if err != nil {
		return err
	}
	return srv.Run(c.Context)
}

// openGatewayCA opens the store (SQLite in the data dir, or PostgreSQL)
// and the CA on it.
func (r *runtime) openGatewayCA(c *ucli.Context, databaseURL string, log *slog.Logger) (*ca.Authority, store.Store, func(), error) {
	dir := caDir(c)
	if _, err := ca.ReadInfo(dir); err != nil {
		return nil, nil, nil, withDataDirHint(err)
	}
	pw, err := r.password(c)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := openStore(c.Context, c, databaseURL, log)
	if err != nil {
		return nil, nil, nil, err
	}
	a, err := ca.Open(ca.Config{Dir: dir, Password: pw}, st, ca.WithLogger(log))
	if err != nil {
		_ = st.Close()
		return nil, nil, nil, err
	}
	return a, st, func() { _ = a.Close(); _ = st.Close() }, nil
}

func openStore(ctx context.Context, c *ucli.Context, databaseURL string, log *slog.Logger) (store.Store, error) {
	if databaseURL != "" {
		return openPostgres(ctx, databaseURL, log)
	}
	st, err := sqlitestore.Open(ctx, dbPath(c), sqlitestore.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return st, nil
}
