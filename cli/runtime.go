package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/internal/keyfile"
)

// runtime carries what every command shares: the process environment and
// the global flags.
type runtime struct {
	env Env
}

// Layout of a data directory.
const (
	caSubdir     = "ca"
	databaseFile = "leash.db"
)

func defaultDataDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".leash")
	}
	return ".leash"
}

func (r *runtime) globalFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "data-dir", Usage: "directory holding the CA (ca/) and the database (leash.db)",
			EnvVars: []string{"LEASH_DATA_DIR"}, Value: defaultDataDir()},
		&ucli.StringFlag{Name: "password-file", Usage: "file holding the CA key password (must be mode 0600 or 0400)",
			EnvVars: []string{"LEASH_CA_PASSWORD_FILE"}},
		&ucli.StringFlag{Name: "database-url", Usage: "postgres://… store the CA commands (cert, token, ca crl) work on, the gateway's; default the SQLite file in --data-dir",
			EnvVars: []string{"LEASH_DATABASE_URL"}},
	}
}

func caDir(c *ucli.Context) string  { return filepath.Join(c.String("data-dir"), caSubdir) }
func dbPath(c *ucli.Context) string { return filepath.Join(c.String("data-dir"), databaseFile) }
func jsonFlag() *ucli.BoolFlag {
	return &ucli.BoolFlag{Name: "json", Usage: "print machine-readable JSON"}
}
func wantJSON(c *ucli.Context) bool { return c.Bool("json") }
func (r *runtime) out(c *ucli.Context) *tabwriter.Writer {
	return tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
}

// password reads the CA password from --password-file. The file must be
// private; a trailing newline is not part of the password. It returns nil
// when no file was given.
func (r *runtime) password(c *ucli.Context) ([]byte, error) {
	path := c.String("password-file")
	if path == "" {
		return nil, nil
	}
	b, err := keyfile.ReadPrivate(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("password file %s does not exist", path)
		}
		return nil, fmt.Errorf("password file: %w", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("password file %s is empty", path)
	}
	return b, nil
}

// openCA opens the CA and its store. The returned close function closes
// both; call it on every path.
func (r *runtime) openCA(c *ucli.Context) (*ca.Authority, func(), error) {
	dir := caDir(c)
	if _, err := ca.ReadInfo(dir); err != nil {
		return nil, nil, withDataDirHint(err)
	}
	pw, err := r.password(c)
	if err != nil {
		return nil, nil, err
	}
	// The same store as the gateway's: tokens, certificates and
	// revocations made here must be the ones the gateway sees.
	st, err := openStore(c.Context, c, c.String("database-url"), r.env.Logger)
	if err != nil {
		return nil, nil, err
	}
	a, err := ca.Open(ca.Config{Dir: dir, Password: pw}, st, ca.WithLogger(r.env.Logger))
	if err != nil {
		_ = st.Close()
		return nil, nil, err
	}
	return a, func() { _ = a.Close(); _ = st.Close() }, nil
}

func withDataDirHint(err error) error {
	if errors.Is(err, ca.ErrNotInitialized) {
		return fmt.Errorf("%w (or point --data-dir / LEASH_DATA_DIR at an existing one)", err)
	}
	return err
}

// printJSON writes v as indented JSON.
func printJSON(c *ucli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ctx returns the command's context.
func ctx(c *ucli.Context) context.Context { return c.Context }

// setUsageErrors makes every command report flag errors as usage errors
// (exit code 2) with a pointer to --help, instead of printing the whole
// help text.
func setUsageErrors(cmds []*ucli.Command) {
	for _, cmd := range cmds {
		cmd.OnUsageError = func(c *ucli.Context, err error, _ bool) error {
			return usageError{fmt.Errorf("%w\nrun '%s --help' for usage", err, c.Command.HelpName)}
		}
		setUsageErrors(cmd.Subcommands)
	}
}

// writeFiles writes each file atomically; if any write fails, the files
// already written by this call are removed again (or restored when they
// replaced an older file), so a failed command leaves nothing half-done.
func writeFiles(files []outFile) error {
	type undo struct {
		path string
		old  []byte
		mode os.FileMode
		had  bool
	}
	var done []undo
	rollback := func() {
		for i := len(done) - 1; i >= 0; i-- {
			u := done[i]
			if u.had {
				_ = keyfile.WriteAtomic(u.path, u.old, u.mode)
			} else {
				_ = os.Remove(u.path)
			}
		}
	}
	for _, f := range files {
		u := undo{path: f.path}
		if st, err := os.Stat(f.path); err == nil {
			old, err := os.ReadFile(f.path)
			if err != nil {
				rollback()
				return fmt.Errorf("read %s before replacing it: %w", f.path, err)
			}
			u.had, u.old, u.mode = true, old, st.Mode().Perm()
		}
		if err := keyfile.WriteAtomic(f.path, f.data, f.mode); err != nil {
			rollback()
			return err
		}
		done = append(done, u)
	}
	return nil
}

type outFile struct {
	path string
	data []byte
	mode os.FileMode
}

// refuseOverwrite errors when any path exists and force is false.
func refuseOverwrite(force bool, paths ...string) error {
	if force {
		return nil
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s already exists; pass --force to replace it", p)
		}
	}
	return nil
}

// args returns the positional arguments after checking that no flag hides
// among them: urfave/cli stops reading flags at the first argument, so
// "revoke 123 --reason x" would otherwise treat --reason as a serial.
func args(c *ucli.Context) ([]string, error) {
	for _, a := range c.Args().Slice() {
		if len(a) > 1 && a[0] == '-' {
			return nil, usageError{fmt.Errorf("flag %s comes after an argument; put flags first: %s [flags] %s",
				a, c.Command.HelpName, c.Command.ArgsUsage)}
		}
	}
	return c.Args().Slice(), nil
}
