package cli_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/cli"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"leash": func() {
			os.Exit(cli.Run(context.Background(), cli.Env{Stdout: os.Stdout, Stderr: os.Stderr}, os.Args))
		},
	})
}

// TestScripts runs testdata/script/*.txtar: every CLI command, with good and
// bad input. Each script gets its own $WORK and data directory.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("LEASH_DATA_DIR", env.WorkDir+"/data")
			env.Setenv("HOME", env.WorkDir+"/home")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"perm":       cmdPerm,
			"certserial": cmdCertSerial,
		},
	})
}

// perm FILE MODE: the file has exactly this octal permission.
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	st, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	got := uint64(st.Mode().Perm())
	if (got == want) == neg {
		ts.Fatalf("%s has mode %04o; want %s%04o", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// certserial FILE VAR: set $VAR to the decimal serial of the first
// certificate in FILE.
func cmdCertSerial(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: certserial FILE VAR")
	}
	c, err := ca.ReadCertFile(ts.MkAbs(args[0]))
	ts.Check(err)
	ts.Setenv(args[1], c.SerialNumber.String())
	ts.Logf("%s=%s", args[1], c.SerialNumber)
}
