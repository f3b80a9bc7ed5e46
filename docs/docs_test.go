package docs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/cli"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/gateway/store/sqlitestore"
	"github.com/leashpki/leash/runner"
	leashtls "github.com/leashpki/leash/tls"
)

// ignoreMarker at the end of a command line in a fenced block exempts that
// line from the command check (for placeholders that are not real syntax).
const ignoreMarker = "# docs:ignore"

// pendingFlags are documented flags that the CLI does not have yet, by
// command path.
var pendingFlags = map[string][]string{}

// docFiles returns every Markdown file in this directory.
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	paths, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no Markdown files in docs/")
	}
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = string(b)
	}
	return out
}

// shellLine is one logical line of a shell code block.
type shellLine struct {
	file string
	line int
	text string
}

// shellLines returns the lines of fenced shell blocks (no info string, sh,
// bash, shell, console), with backslash continuations joined.
func shellLines(file, md string) []shellLine {
	var out []shellLine
	inFence, shell := false, false
	var fence string
	var pending strings.Builder
	start := 0
	sc := bufio.NewScanner(strings.NewReader(md))
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		trimmed := strings.TrimSpace(l)
		if !inFence {
			if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
				inFence = true
				fence = trimmed[:3]
				switch strings.TrimSpace(trimmed[3:]) {
				case "", "sh", "bash", "shell", "console":
					shell = true
				default:
					shell = false
				}
			}
			continue
		}
		if strings.HasPrefix(trimmed, fence) {
			inFence = false
			continue
		}
		if !shell {
			continue
		}
		if pending.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(l, "\\") {
			pending.WriteString(strings.TrimSuffix(l, "\\"))
			pending.WriteString(" ")
			continue
		}
		pending.WriteString(l)
		out = append(out, shellLine{file: file, line: start, text: pending.String()})
		pending.Reset()
	}
	return out
}

// stripComment drops a shell comment (a # that starts a word).
func stripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return s[:i]
		}
	}
	return s
}

// words splits a shell line into words, keeping quoted strings together
// (quotes removed). It is deliberately simple: docs use simple lines.
func words(s string) []string {
	var out []string
	var cur strings.Builder
	var quote byte
	have := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, have = c, true
		case c == ' ' || c == '\t':
			if have || cur.Len() > 0 {
				out = append(out, cur.String())
			}
			cur.Reset()
			have = false
		case c == ';' || c == '|' || c == '&' || c == '(' || c == ')' || c == '<' || c == '>':
			if have || cur.Len() > 0 {
				out = append(out, cur.String())
			}
			cur.Reset()
			have = false
			out = append(out, string(c))
		default:
			cur.WriteByte(c)
		}
	}
	if have || cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

var envAssign = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// invocation is one leash or leash-runner command found in the docs.
type invocation struct {
	where string
	prog  string // leash or leash-runner
	args  []string
}

// invocations finds the leash and leash-runner commands on a line.
func invocations(l shellLine) []invocation {
	if strings.Contains(l.text, ignoreMarker) {
		return nil
	}
	ws := words(stripComment(l.text))
	var out []invocation
	cmdPos := true
	for i := 0; i < len(ws); i++ {
		w := ws[i]
		switch {
		case w == ";" || w == "|" || w == "&" || w == "(" || w == "$":
			cmdPos = true
			continue
		case cmdPos && envAssign.MatchString(w):
			continue
		case cmdPos && (w == "sudo" || w == "exec" || w == "time" || w == "do" || w == "then" || w == "xargs" || w == "env" || w == "!"):
			continue
		}
		if !cmdPos {
			continue
		}
		cmdPos = false
		w = strings.TrimPrefix(w, "$")
		base := filepath.Base(w)
		if base != "leash" && base != "leash-runner" {
			continue
		}
		inv := invocation{where: l.file + ":" + itoa(l.line), prog: base}
		for i+1 < len(ws) {
			n := ws[i+1]
			if n == ";" || n == "|" || n == "&" || n == ")" || n == "<" || n == ">" || strings.HasSuffix(n, "2") && i+2 < len(ws) && ws[i+2] == ">" {
				break
			}
			inv.args = append(inv.args, n)
			i++
		}
		out = append(out, inv)
	}
	return out
}

func itoa(n int) string {
	var b []byte
	if n == 0 {
		return "0"
	}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// flagInfo maps a flag name (and aliases) to whether it takes a value.
func flagInfo(flags []ucli.Flag) map[string]bool {
	m := map[string]bool{}
	for _, f := range flags {
		_, isBool := f.(*ucli.BoolFlag)
		for _, n := range f.Names() {
			m[n] = !isBool
		}
	}
	return m
}

// checkLeash checks one leash command line against the command tree.
func checkLeash(app *ucli.App, args []string) []string {
	var problems []string
	flags := flagInfo(app.Flags)
	cmds := app.Commands
	var path []string
	descend := true
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if name == "help" || name == "h" {
				continue
			}
			takesValue, ok := flags[name]
			if !ok && slicesContains(pendingFlags[strings.Join(path, " ")], name) {
				takesValue, ok = true, true
			}
			if !ok {
				where := "leash"
				if len(path) > 0 {
					where = "leash " + strings.Join(path, " ")
				}
				problems = append(problems, "unknown flag --"+name+" for '"+where+"'")
				continue
			}
			if takesValue && !hasValue {
				i++
			}
			continue
		}
		if !descend {
			continue // a positional argument
		}
		var next *ucli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			if len(path) == 0 || len(cmds) > 0 {
				problems = append(problems, "unknown command '"+strings.TrimSpace("leash "+strings.Join(path, " ")+" "+a)+"'")
				return problems
			}
			descend = false
			continue
		}
		path = append(path, next.Name)
		flags = flagInfo(next.Flags)
		cmds = next.Subcommands
		if len(cmds) == 0 {
			descend = false
		}
	}
	if descend && len(cmds) > 0 && len(path) > 0 {
		problems = append(problems, "'leash "+strings.Join(path, " ")+"' needs a subcommand")
	}
	return problems
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// runnerFlags returns leash-runner's flags from its own usage output.
func runnerFlags(t *testing.T) map[string]bool {
	t.Helper()
	var out bytes.Buffer
	_, err := runner.LoadConfig([]string{"-help"}, nil, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("leash-runner -help: %v", err)
	}
	re := regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)(\s+(\S+))?`)
	m := map[string]bool{}
	for _, g := range re.FindAllStringSubmatch(out.String(), -1) {
		m[g[1]] = g[3] != ""
	}
	if len(m) < 5 {
		t.Fatalf("found only %d leash-runner flags in:\n%s", len(m), out.String())
	}
	return m
}

func checkRunner(flags map[string]bool, args []string) []string {
	var problems []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || len(a) == 1 {
			problems = append(problems, "leash-runner takes no arguments, got "+a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "help" || name == "h" {
			continue
		}
		takesValue, ok := flags[name]
		if !ok {
			problems = append(problems, "unknown leash-runner flag -"+name)
			continue
		}
		if takesValue && !hasValue {
			i++
		}
	}
	return problems
}

// TestDocCommands checks every leash and leash-runner command in the
// fenced shell blocks of docs/*.md against the real command line.
func TestDocCommands(t *testing.T) {
	app := cli.NewApp(cli.Env{Stdout: io.Discard, Stderr: io.Discard})
	rflags := runnerFlags(t)
	files := docFiles(t)
	names := make([]string, 0, len(files))
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)
	count := 0
	for _, f := range names {
		if f == "cli.md" {
			continue // generated from the command tree; its synopsis is not a command
		}
		for _, l := range shellLines(f, files[f]) {
			for _, inv := range invocations(l) {
				count++
				var problems []string
				if inv.prog == "leash" {
					problems = checkLeash(app, inv.args)
				} else {
					problems = checkRunner(rflags, inv.args)
				}
				for _, p := range problems {
					t.Errorf("%s: %s\n\t%s", inv.where, p, strings.TrimSpace(l.text))
				}
			}
		}
	}
	if count < 30 {
		t.Fatalf("checked only %d commands; the extraction lost some", count)
	}
}

// TestCheckerCatchesMistakes makes sure the command check is not vacuous.
func TestCheckerCatchesMistakes(t *testing.T) {
	app := cli.NewApp(cli.Env{Stdout: io.Discard, Stderr: io.Discard})
	bad := []string{
		"leash cert revok 123",
		"leash cert revoke --bogus x 123",
		"leash ca",
		"leash gateway serve --ui-bogus",
		"leash runner revoke --reason key-compromise --nope web-1",
	}
	for _, b := range bad {
		invs := invocations(shellLine{file: "t", line: 1, text: b})
		if len(invs) != 1 {
			t.Fatalf("%q: found %d invocations", b, len(invs))
		}
		if len(checkLeash(app, invs[0].args)) == 0 {
			t.Errorf("%q passed the check", b)
		}
	}
	good := []string{
		"LEASH_DATA_DIR=x leash --data-dir d cert revoke --reason=key-compromise 123 # note",
		"leash gateway serve --mode mtls --ui --ui-prefix /leash/",
		"bin/leash job submit --wait 30s dev-runner exec uptime | jq .",
	}
	for _, g := range good {
		invs := invocations(shellLine{file: "t", line: 1, text: g})
		if len(invs) != 1 {
			t.Fatalf("%q: found %d invocations", g, len(invs))
		}
		if p := checkLeash(app, invs[0].args); len(p) != 0 {
			t.Errorf("%q: %v", g, p)
		}
	}
}

var metricName = regexp.MustCompile(`\bleash_[a-z0-9_]*[a-z0-9]\b`)

// sourceMetrics returns the leash_* names written in gateway/metrics.go.
// It covers the vectors that have no series until something happens.
func sourceMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "gateway", "metrics.go"))
	if err != nil {
		t.Fatal(err)
	}
	lit := regexp.MustCompile(`"(leash_[a-z0-9_]+)"`)
	m := map[string]bool{}
	for _, g := range lit.FindAllStringSubmatch(string(b), -1) {
		m[g[1]] = true
	}
	return m
}

// registryMetrics builds a real gateway on an empty store and gathers its
// registry: every leash_* family present there must be documented.
func registryMetrics(t *testing.T) map[string]bool {
	t.Helper()
	dir := t.TempDir()
	caDir := filepath.Join(dir, "ca")
	if _, err := ca.Init(caDir, ca.InitOptions{Name: "Docs Test", InsecureNoPassword: true}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "leash.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	a, err := ca.Open(ca.Config{Dir: caDir}, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	srv, err := gateway.New(gateway.Config{Mode: leashtls.ModePlain, Listen: ln.Addr().String(), EnrollListen: gateway.EnrollOff},
		a, st, gateway.WithListeners(ln, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "leash_") {
			m[mf.GetName()] = true
		}
	}
	return m
}

// TestMetricsDocumented checks docs/prometheus.md against the gateway's
// metrics, both ways, and that no other doc names a metric that does not
// exist.
func TestMetricsDocumented(t *testing.T) {
	src := sourceMetrics(t)
	reg := registryMetrics(t)
	if len(reg) < 5 {
		t.Fatalf("the registry has only %d leash_* families: %v", len(reg), reg)
	}
	for n := range reg {
		if !src[n] {
			t.Errorf("registry has %s but the source scan of gateway/metrics.go missed it", n)
		}
	}
	files := docFiles(t)
	documented := map[string]bool{}
	for _, n := range metricName.FindAllString(files["prometheus.md"], -1) {
		documented[n] = true
	}
	for n := range src {
		if !documented[n] {
			t.Errorf("metric %s is registered but not documented in docs/prometheus.md", n)
		}
	}
	for f, md := range files {
		if f == "cli.md" {
			continue
		}
		for _, n := range metricName.FindAllString(md, -1) {
			if !src[n] {
				t.Errorf("%s names metric %s, which the gateway does not register", f, n)
			}
		}
	}
}

// TestRelativeLinks checks that relative links between docs resolve.
func TestRelativeLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for f, md := range docFiles(t) {
		for _, g := range link.FindAllStringSubmatch(md, -1) {
			target := g[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			if _, err := os.Stat(filepath.Clean(target)); err != nil {
				t.Errorf("%s: link %s does not resolve: %v", f, g[1], err)
			}
		}
	}
}
