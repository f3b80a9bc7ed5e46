package testpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// readyTimeout bounds the wait for a started cluster to accept connections.
const readyTimeout = 30 * time.Second

// unavailableError means no cluster can be started here: PostgreSQL is not
// installed, or the tests run as root without a postgres user to run it as.
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string { return e.reason }

// cluster is a running throwaway PostgreSQL cluster.
type cluster struct {
	dir   string   // holds data/, sock/ and log
	pgCtl string   // path of pg_ctl
	as    []string // command prefix running a tool as the cluster's owner; empty when that is us
	url   string   // administrative connection URL
}

// startCluster initialises and starts a cluster in a new temporary
// directory. On failure it leaves nothing behind.
func startCluster(ctx context.Context) (c *cluster, err error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	as, owner, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "leash-testpg-")
	if err != nil {
		return nil, fmt.Errorf("cluster directory: %w", err)
	}
	c = &cluster{dir: dir, pgCtl: filepath.Join(bin, "pg_ctl"), as: as}
	started := false
	defer func() {
		if err == nil {
			return
		}
		if started {
			// ctx may be what ran out; the stop gets its own time.
			stopCtx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			_ = c.pgCtlStop(stopCtx)
		}
		_ = os.RemoveAll(dir)
	}()

	sock := filepath.Join(dir, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if owner != nil {
		for _, p := range []string{dir, sock} {
			if err := os.Chown(p, owner.uid, owner.gid); err != nil {
				return nil, fmt.Errorf("hand %s to the postgres user: %w", p, err)
			}
		}
	}
	data := filepath.Join(dir, "data")
	if err := c.initdb(ctx, filepath.Join(bin, "initdb"), data); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
		port, sock)
	started = true // from here on, a failure stops whatever did start
	if err := c.run(ctx, c.pgCtl, "-D", data, "-l", filepath.Join(dir, "log"), "-o", opts, "-w", "start"); err != nil {
		return nil, fmt.Errorf("%w\nserver log:\n%s", err, c.log())
	}
	c.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	readyCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := waitReady(readyCtx, c.url); err != nil {
		return nil, fmt.Errorf("cluster in %s: %w\nserver log:\n%s", dir, err, c.log())
	}
	return c, nil
}

// initdb initialises the cluster's data directory. The databases sort text
// by ICU's en-US collation where the server supports it (PostgreSQL 15 built
// with ICU), as a production database usually sorts by a language's rules
// rather than by byte: code that needs byte order must ask for it, and the
// tests show when it does not. Elsewhere they fall back to byte order (C).
func (c *cluster) initdb(ctx context.Context, initdb, data string) error {
	common := []string{"-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"}
	icu := append(slices.Clone(common), "--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US")
	icuErr := c.run(ctx, initdb, icu...)
	if icuErr == nil {
		return nil
	}
	if err := os.RemoveAll(data); err != nil {
		return fmt.Errorf("%w\nand then could not clear %s: %w", icuErr, data, err)
	}
	if err := c.run(ctx, initdb, append(common, "--locale=C")...); err != nil {
		return fmt.Errorf("%w\n(after the ICU attempt failed: %w)", err, icuErr)
	}
	return nil
}

// stop stops the cluster at once (it holds nothing worth a clean
// shutdown) and removes its files.
func (c *cluster) stop(ctx context.Context) error {
	err := c.pgCtlStop(ctx)
	if rerr := os.RemoveAll(c.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove cluster directory: %w", rerr))
	}
	return err
}

func (c *cluster) pgCtlStop(ctx context.Context) error {
	return c.run(ctx, c.pgCtl, "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w", "stop")
}

// run runs a PostgreSQL tool as the cluster's owner, in the cluster's
// directory (the postgres user may not be able to enter ours).
func (c *cluster) run(ctx context.Context, tool string, args ...string) error {
	argv := append(slices.Clone(c.as), tool)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = c.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	return nil
}

// log returns the server log, for error messages.
func (c *cluster) log() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(b)
}

// owner is the user a cluster is initialised and run as.
type owner struct{ uid, gid int }

// runAs returns the command prefix and owner for running PostgreSQL's
// tools: none when we are not root, runuser and the postgres user when we
// are.
func runAs() ([]string, *owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, nil, &unavailableError{"the tests run as root, which initdb refuses, and there is no postgres user to run it as"}
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres user id %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres group id %q: %w", u.Gid, err)
	}
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		return nil, nil, &unavailableError{"the tests run as root, which initdb refuses, and runuser (util-linux) is not installed to switch to the postgres user"}
	}
	return []string{runuser, "-u", u.Username, "--"}, &owner{uid, gid}, nil
}

// findBin returns the directory holding initdb and pg_ctl: the one on
// $PATH, or else the newest /usr/lib/postgresql/<version>/bin.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if isExec(filepath.Join(dir, "pg_ctl")) {
			return dir, nil
		}
	}
	dirs, err := filepath.Glob("/usr/lib/postgresql/*/bin")
	if err != nil {
		return "", fmt.Errorf("look for PostgreSQL: %w", err)
	}
	dirs = slices.DeleteFunc(dirs, func(d string) bool {
		return !isExec(filepath.Join(d, "initdb")) || !isExec(filepath.Join(d, "pg_ctl"))
	})
	if len(dirs) == 0 {
		return "", &unavailableError{"initdb and pg_ctl are neither on $PATH nor in /usr/lib/postgresql/*/bin"}
	}
	slices.SortFunc(dirs, func(a, b string) int {
		return compareVersions(filepath.Base(filepath.Dir(a)), filepath.Base(filepath.Dir(b)))
	})
	return dirs[len(dirs)-1], nil
}

// compareVersions orders dotted version numbers (9.6 < 15 < 16.1);
// components that are not numbers sort first.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(pa), len(pb)) {
		na, nb := -1, -1
		if i < len(pa) {
			if n, err := strconv.Atoi(pa[i]); err == nil {
				na = n
			}
		}
		if i < len(pb) {
			if n, err := strconv.Atoi(pb[i]); err == nil {
				nb = n
			}
		}
		if na != nb {
			return na - nb
		}
	}
	return 0
}

func isExec(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}
