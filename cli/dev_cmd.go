package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/runner"
	leashtls "github.com/leashpki/leash/tls"
)

func (r *runtime) devCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "dev",
		Usage: "run a complete local installation: CA, mTLS gateway on SQLite, one runner",
		Description: `Initialises a CA in --data-dir (once; the CA password is generated into
DATA_DIR/ca-password unless --password-file names one), starts the gateway in
mTLS mode on the embedded SQLite store, issues an operator certificate and a
client config for the CLI, enrolls one local runner with a one-time token and
prints what to try next. Ctrl-C stops everything.`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "listen", Value: "127.0.0.1:8443", Usage: "API address"},
			&ucli.StringFlag{Name: "enroll-listen", Value: "127.0.0.1:8444", Usage: "enrollment address"},
			&ucli.StringFlag{Name: "runner-name", Value: "dev-runner", Usage: "name of the local runner"},
			&ucli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		Action: r.dev,
	}
}

func (r *runtime) dev(c *ucli.Context) error {
	if _, err := args(c); err != nil {
		return err
	}
	dataDir, err := filepath.Abs(c.String("data-dir"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := devInitCA(c, dataDir); err != nil {
		return err
	}
	level := slog.LevelInfo
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usageError{fmt.Errorf("--log-level: %w", err)}
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	authority, st, closeAll, err := r.openGatewayCA(c, "", log)
	if err != nil {
		return err
	}
	defer closeAll()
	srv, err := gateway.New(gateway.Config{ID: "dev", Version: version, Mode: leashtls.ModeMTLS,
		Listen: c.String("listen"), EnrollListen: c.String("enroll-listen")}, authority, st, gateway.WithLogger(log.With("component", "gateway")))
	if err != nil {
		return err
	}
	apiURL := "https://" + srv.APIAddr().String()
	enrollURL := "https://" + srv.EnrollAddr().String()
	op, err := devOperator(c, authority, dataDir, apiURL)
	if err != nil {
		return err
	}
	name := c.String("runner-name")
	rcfg := runner.Config{Name: name, Gateway: apiURL, EnrollURL: enrollURL, StateDir: filepath.Join(dataDir, "runner"),
		Commands: map[string][]string{"uptime": {"uptime"}, "disk": {"df", "-h"}, "hostname": {"hostname"}},
		Labels:   map[string]string{"env": "dev"}}
	if _, err := os.Stat(filepath.Join(rcfg.StateDir, "identity.pem")); errors.Is(err, os.ErrNotExist) {
		tok, err := authority.CreateToken(c.Context, ca.TokenRequest{Profile: ca.ProfileRunner, Subject: name})
		if err != nil {
			return err
		}
		rcfg.Token = tok.Value
	}
	agent, err := runner.New(rcfg, runner.WithLogger(log.With("component", "runner")), runner.WithVersion(version))
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(c.Context)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error {
		err := agent.Run(gctx)
		if err != nil && gctx.Err() == nil {
			return fmt.Errorf("runner: %w", err)
		}
		return nil
	})
	devBanner(c, dataDir, apiURL, name, op)
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	fmt.Fprintln(c.App.Writer, "leash dev stopped")
	return err
}

// devInitCA initialises the CA once, with a generated password file
// unless one was given.
func devInitCA(c *ucli.Context, dataDir string) error {
	if c.String("password-file") == "" {
		pwFile := filepath.Join(dataDir, "ca-password")
		if _, err := os.Stat(pwFile); errors.Is(err, os.ErrNotExist) {
			b := make([]byte, 24)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			if err := os.WriteFile(pwFile, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
				return fmt.Errorf("password file: %w", err)
			}
		}
		if err := c.Set("password-file", pwFile); err != nil {
			return err
		}
	}
	if _, err := ca.ReadInfo(caDir(c)); err == nil {
		return nil
	}
	pw, err := (&runtime{}).password(c)
	if err != nil {
		return err
	}
	info, err := ca.Init(caDir(c), ca.InitOptions{Name: "Leash Dev", Password: pw})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "initialised a CA in %s (root fingerprint %s)\n", caDir(c), info.RootFingerprint)
	return nil
}

type devOperatorFiles struct{ config, cert, key, ca string }

// devOperator issues an operator certificate and writes a client config
// the CLI reads through LEASH_CLIENT_CONFIG.
func devOperator(c *ucli.Context, a *ca.Authority, dataDir, apiURL string) (devOperatorFiles, error) {
	dir := filepath.Join(dataDir, "operator")
	f := devOperatorFiles{config: filepath.Join(dir, "config.yaml"), cert: filepath.Join(dir, "operator.crt"),
		key: filepath.Join(dir, "operator.key"), ca: filepath.Join(dir, "ca.crt")}
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		return f, err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return f, err
	}
	iss, err := a.Issue(c.Context, ca.IssueRequest{Profile: ca.ProfileOperator, Name: "dev-operator", CSR: csr})
	if err != nil {
		return f, err
	}
	keyPEM, err := ca.MarshalPrivateKey(key, nil)
	if err != nil {
		return f, err
	}
	cfg := clientConfig{Gateway: apiURL, CA: f.ca, Cert: f.cert, Key: f.key}
	data, err := cfg.marshal()
	if err != nil {
		return f, err
	}
	if err := mkdirPrivate(dir); err != nil {
		return f, err
	}
	return f, writeFiles([]outFile{{f.key, keyPEM, 0o600}, {f.cert, iss.ChainPEM(), 0o644},
		{f.ca, ca.EncodeCerts(a.Root()), 0o644}, {f.config, data, 0o600}})
}

func devBanner(c *ucli.Context, dataDir, apiURL, runnerName string, op devOperatorFiles) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nLeash is running: gateway %s (mTLS), runner %q, data in %s\n\n", apiURL, runnerName, dataDir)
	fmt.Fprintf(&b, "Try, in another terminal:\n")
	fmt.Fprintf(&b, "  export LEASH_CLIENT_CONFIG=%s\n", op.config)
	fmt.Fprintf(&b, "  leash runner list\n")
	fmt.Fprintf(&b, "  leash job submit --wait 30s %s exec uptime\n", runnerName)
	fmt.Fprintf(&b, "  leash job submit --wait 30s %s info\n", runnerName)
	fmt.Fprintf(&b, "  curl --cacert %s --cert %s --key %s %s/v1/runners\n", op.ca, op.cert, op.key, apiURL)
	fmt.Fprintf(&b, "  leash --data-dir %s token create --name web-2   # then, on any host:\n", dataDir)
	fmt.Fprintf(&b, "  LEASH_NAME=web-2 LEASH_GATEWAY=%s LEASH_TOKEN=<token> LEASH_STATE_DIR=/tmp/web-2 leash-runner\n\n", apiURL)
	fmt.Fprintf(&b, "Ctrl-C stops everything.\n")
	fmt.Fprint(c.App.Writer, b.String())
}
