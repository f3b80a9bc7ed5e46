package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/leashpki/leash/cli"
	"github.com/leashpki/leash/gateway/store/pgstore"
	"github.com/leashpki/leash/internal/testpg"
)

// TestCLIOnPostgres: with --database-url (or LEASH_DATABASE_URL) the CA
// commands work on the gateway's PostgreSQL store, not on a SQLite file in
// the data directory: a token minted there is the one a PostgreSQL gateway
// will accept, and a revocation is the one it enforces.
func TestCLIOnPostgres(t *testing.T) {
	url := testpg.Start(t)
	data := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		argv := append([]string{"leash", "--data-dir", data, "--database-url", url}, args...)
		if code := cli.Run(context.Background(), cli.Env{Stdout: &out, Stderr: &errOut}, argv); code != 0 {
			t.Fatalf("leash %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	run("ca", "init", "--name", "PG Test CA", "--insecure-no-password")
	var tok struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(run("token", "create", "--name", "pg-runner", "--json")), &tok); err != nil || tok.ID == "" {
		t.Fatalf("token create --json: %v %+v", err, tok)
	}
	run("cert", "issue", "client", "--role", "operator", "--name", "alice",
		"--cert-file", filepath.Join(data, "alice.crt"), "--key-file", filepath.Join(data, "alice.key"))
	list := run("cert", "list", "--json")

	if _, err := os.Stat(filepath.Join(data, "leash.db")); !os.IsNotExist(err) {
		t.Fatalf("a SQLite file appeared in the data directory (%v): the commands did not use PostgreSQL", err)
	}
	st, err := pgstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if rec, err := st.Token(context.Background(), tok.ID); err != nil || rec.Subject != "pg-runner" {
		t.Fatalf("token %s in the PostgreSQL store: %+v, %v", tok.ID, rec, err)
	}
	if !bytes.Contains([]byte(list), []byte("alice")) {
		t.Fatalf("cert list on PostgreSQL does not show the issued cert: %s", list)
	}
}
