package dockerproxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testdocker"
)

func TestMain(m *testing.M) { os.Exit(testdocker.Run(m)) }

// proxyMessage starts every message the proxy answers with.
const proxyMessage = "leash docker proxy"

// serveUnix serves p on a unix socket until t ends and returns its path.
func serveUnix(t *testing.T, p *Proxy) string {
	t.Helper()
	sock := filepath.Join(shortDir(t), "proxy.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("proxy server: %v", err)
		}
		p.CloseIdleConnections()
	})
	return sock
}

// realSetup is the engine, a container with a secret in its environment,
// and a proxy for cfg in front of the engine.
func realSetup(t *testing.T, cfg Config) (*testdocker.Engine, testdocker.Container, string) {
	t.Helper()
	e := testdocker.Start(t)
	app := e.StartContainer(t, testdocker.ContainerSpec{
		Env:    []string{"SECRET=hunter2", "MODE=test"},
		Labels: map[string]string{"leash.test": "real"},
	})
	cfg.Socket = e.Socket
	return e, app, serveUnix(t, newProxy(t, cfg))
}

// state is what the engine itself says, through its own socket.
type state struct {
	containers []string // ids, sorted
	images     []string // ids, sorted
	volumes    []string
	networks   []string
	app        inspect
}

type inspect struct {
	ID, Name string
	State    struct {
		Running, Paused bool
		StartedAt       string
	}
	ExecIDs []string
	Config  struct{ Env []string }
}

func engineGet(t *testing.T, e *testdocker.Engine, path string, out any) int {
	t.Helper()
	resp, err := e.Request(testContext(t), http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

func snapshot(t *testing.T, e *testdocker.Engine, id string) state {
	t.Helper()
	var s state
	var cs, is []struct {
		ID string `json:"Id"`
	}
	engineGet(t, e, "/containers/json?all=1", &cs)
	engineGet(t, e, "/images/json?all=1", &is)
	for _, c := range cs {
		s.containers = append(s.containers, c.ID)
	}
	for _, i := range is {
		s.images = append(s.images, i.ID)
	}
	var vols struct{ Volumes []struct{ Name string } }
	engineGet(t, e, "/volumes", &vols)
	for _, v := range vols.Volumes {
		s.volumes = append(s.volumes, v.Name)
	}
	var nets []struct{ Name string }
	engineGet(t, e, "/networks", &nets)
	for _, n := range nets {
		s.networks = append(s.networks, n.Name)
	}
	for _, l := range [][]string{s.containers, s.images, s.volumes, s.networks} {
		slices.Sort(l)
	}
	if code := engineGet(t, e, "/containers/"+id+"/json", &s.app); code != http.StatusOK {
		t.Fatalf("the container is gone: inspect answered %d", code)
	}
	return s
}

// unchanged fails t if the engine's state moved from before.
func unchanged(t *testing.T, e *testdocker.Engine, id string, before state) {
	t.Helper()
	after := snapshot(t, e, id)
	for _, c := range []struct {
		what          string
		before, after []string
	}{
		{"containers", before.containers, after.containers},
		{"images", before.images, after.images},
		{"volumes", before.volumes, after.volumes},
		{"networks", before.networks, after.networks},
		{"exec instances", before.app.ExecIDs, after.app.ExecIDs},
	} {
		if !slices.Equal(c.before, c.after) {
			t.Errorf("%s changed: %q -> %q", c.what, c.before, c.after)
		}
	}
	b, a := before.app, after.app
	if a.Name != b.Name || a.State.StartedAt != b.State.StartedAt || !a.State.Running || a.State.Paused {
		t.Errorf("the container changed: %+v -> %+v", b, a)
	}
	if !slices.Contains(a.Config.Env, "SECRET=hunter2") {
		t.Errorf("the engine's own view lost the environment: %q", a.Config.Env)
	}
}

func TestRealCLIThroughProxy(t *testing.T) {
	e, app, sock := realSetup(t, Config{})
	image := e.Image(t)
	before := snapshot(t, e, app.ID)
	out := t.TempDir()

	t.Run("reads", func(t *testing.T) {
		tests := []struct {
			args    []string
			want    []string
			notWant []string
		}{
			{[]string{"version"}, []string{"Server:", "API version:"}, nil},
			{[]string{"ps", "-a", "--format", "{{.ID}} {{.Names}} {{.Status}}"}, []string{app.Name, "Up "}, nil},
			{[]string{"inspect", app.Name}, []string{`"SECRET=<redacted>"`, `"MODE=<redacted>"`, app.ID, `"leash.test": "real"`}, []string{"hunter2"}},
			{[]string{"container", "inspect", "--format", "{{json .Config.Env}}", app.ID[:12]}, []string{"SECRET=<redacted>"}, []string{"hunter2"}},
			{[]string{"images", "--format", "{{.Repository}}:{{.Tag}}"}, []string{image}, nil},
			{[]string{"info", "--format", "{{.Containers}} {{.Driver}}"}, nil, nil},
			{[]string{"network", "ls"}, []string{"none"}, nil},
			{[]string{"volume", "ls"}, nil, nil},
		}
		for _, tt := range tests {
			t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
				got, err := testdocker.RunCLI(t, sock, tt.args...)
				if err != nil {
					t.Fatalf("through the proxy: %v", err)
				}
				for _, w := range tt.want {
					if !strings.Contains(got, w) {
						t.Errorf("output lacks %q:\n%s", w, got)
					}
				}
				for _, w := range tt.notWant {
					if strings.Contains(got, w) {
						t.Errorf("output holds %q:\n%s", w, got)
					}
				}
			})
		}
	})

	t.Run("refusals", func(t *testing.T) {
		buildDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(buildDir, "Dockerfile"), []byte("FROM "+image+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tests := [][]string{
			{"rm", "-f", app.Name},
			{"exec", app.Name, "/sleeper"},
			{"run", "--rm", "--network", "none", image},
			{"create", image},
			{"cp", app.Name + ":/sleeper", filepath.Join(out, "sleeper")},
			{"cp", filepath.Join(buildDir, "Dockerfile"), app.Name + ":/Dockerfile"},
			{"export", "-o", filepath.Join(out, "export.tar"), app.Name},
			{"save", "-o", filepath.Join(out, "save.tar"), image},
			{"stop", app.Name},
			{"restart", app.Name},
			{"kill", app.Name},
			{"pause", app.Name},
			{"logs", app.Name},
			{"top", app.Name},
			{"attach", "--no-stdin", app.Name},
			{"rename", app.Name, "pwned"},
			{"commit", app.Name, "leash-test/pwned:1"},
			{"update", "--memory", "64m", app.Name},
			{"image", "rm", image},
			{"tag", image, "leash-test/pwned:2"},
			{"build", "-q", "-t", "leash-test/pwned:3", buildDir},
			{"volume", "create", "pwned"},
			{"network", "create", "pwned"},
			{"container", "prune", "-f"},
			{"system", "df"},
			{"secret", "ls"},
			{"plugin", "ls"},
			{"swarm", "unlock-key"},
		}
		for _, args := range tests {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				got, err := testdocker.RunCLI(t, sock, args...)
				if err == nil {
					t.Fatalf("the CLI succeeded through the proxy:\n%s", got)
				}
				// A refused HEAD has no body, so the CLI can only say
				// Forbidden, and attach reports the failed upgrade by
				// status; everything else carries the proxy's message.
				msg := err.Error()
				if !strings.Contains(msg, proxyMessage) && !strings.Contains(msg, "Forbidden") && !strings.Contains(msg, "received 403") {
					t.Errorf("the CLI failed, but not on the proxy's refusal: %v", err)
				}
				t.Logf("%v", err)
			})
		}
		for _, f := range []string{"sleeper", "export.tar", "save.tar"} {
			if st, err := os.Stat(filepath.Join(out, f)); err == nil && st.Size() > 0 {
				t.Errorf("%s was written (%d bytes)", f, st.Size())
			}
		}
	})
	unchanged(t, e, app.ID, before)
}

// Raw requests against the proxy, with the real engine behind it: none may
// change anything.
func TestRealRawBypasses(t *testing.T) {
	e, app, sock := realSetup(t, Config{})
	image := e.Image(t)
	before := snapshot(t, e, app.ID)
	id, name := app.ID, app.Name
	create := `{"Image":"` + image + `","HostConfig":{"NetworkMode":"none"}}`
	exec := `{"Cmd":["/sleeper"],"AttachStdout":true}`
	withBody := func(method, target, body string) string {
		return req(method, target, "Content-Type: application/json", "Content-Length: "+strconv.Itoa(len(body))) + body
	}
	tests := []struct{ name, raw string }{
		{"delete", req("DELETE", "/v1.41/containers/"+id+"?force=1")},
		{"delete, double slashes", req("DELETE", "//containers//"+name+"?force=1")},
		{"delete, override on inspect", req("GET", "/v1.41/containers/"+id+"/json", "X-HTTP-Method-Override: DELETE")},
		{"stop", req("POST", "/v1.41/containers/"+id+"/stop")},
		{"kill via dots", req("POST", "/v1.41/containers/"+id+"/json/../kill")},
		{"kill via encoded slash", req("POST", "/v1.41/containers/"+id+"%2Fkill")},
		{"kill via encoded letters", req("POST", "/v1.41/containers/"+id+"/%6bill")},
		{"kill, absolute-form", req("POST", "http://docker/v1.41/containers/"+id+"/kill")},
		{"pause, upper case", req("POST", "/v1.41/Containers/"+id+"/pause")},
		{"rename", req("POST", "/v1.41/containers/"+id+"/rename?name=pwned")},
		{"exec create", withBody("POST", "/v1.41/containers/"+id+"/exec", exec)},
		{"exec create, trailing slash", withBody("POST", "/v1.41/containers/"+id+"/exec/", exec)},
		{"attach, upgrade", req("POST", "/v1.41/containers/"+id+"/attach?stream=1&stdout=1", "Upgrade: tcp", "Connection: Upgrade")},
		{"export", req("GET", "/v1.41/containers/"+id+"/export")},
		{"archive", req("GET", "/v1.41/containers/"+id+"/archive?path=/sleeper")},
		{"image save", req("GET", "/v1.41/images/get?names="+url.QueryEscape(image))},
		{"create", withBody("POST", "/v1.41/containers/create?name=pwned", create)},
		{"create, version twice", withBody("POST", "/v1.41/v1.41/containers/create?name=pwned", create)},
		{"create, in a GET body", withBody("GET", "/v1.41/containers/create", create)},
		{"delete smuggled after Content-Length and chunked",
			"GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
				req("DELETE", "/v1.41/containers/"+id+"?force=1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, "unix", sock)
			// A ping closes the exchange, so the answers can be read to the
			// end: each is the proxy's refusal, except that final ping's.
			rc.send(tt.raw + req("GET", "/_ping", "Connection: close"))
			refusals := 0
			for n := 1; ; n++ {
				resp, err := http.ReadResponse(rc.br, nil)
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					break
				}
				if err != nil {
					t.Fatalf("answer %d: %v", n, err)
				}
				b, _ := io.ReadAll(resp.Body)
				switch {
				case resp.StatusCode == http.StatusForbidden && strings.Contains(string(b), proxyMessage):
					refusals++
				case resp.StatusCode == http.StatusOK && string(b) == "OK":
				default:
					t.Errorf("answer %d: %s %s, want the proxy's 403", n, resp.Status, b)
				}
				if resp.Close {
					break
				}
			}
			if refusals == 0 {
				t.Errorf("no refusal")
			}
		})
	}
	unchanged(t, e, app.ID, before)

	// The allowed forms still work, redacted, on the same engine.
	for _, target := range []string{"/v1.41/containers/" + id + "/json", "//v1.41//containers//" + name + "//json/"} {
		resp, body := dialAndDo(t, sock, req("GET", target))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "SECRET=<redacted>") || strings.Contains(body, "hunter2") {
			t.Errorf("GET %s: %s %s", target, resp.Status, body)
		}
	}
}

func TestRealAllowedWrite(t *testing.T) {
	e, app, sock := realSetup(t, Config{AllowedWrites: []string{"POST /containers/{id}/restart"}})
	before := snapshot(t, e, app.ID)
	if _, err := testdocker.RunCLI(t, sock, "restart", "-t", "1", app.Name); err != nil {
		t.Fatalf("an allowed restart failed through the proxy: %v", err)
	}
	after := snapshot(t, e, app.ID)
	if after.app.State.StartedAt == before.app.State.StartedAt || !after.app.State.Running {
		t.Errorf("the container was not restarted: %+v -> %+v", before.app.State, after.app.State)
	}
	for _, args := range [][]string{{"stop", app.Name}, {"rm", "-f", app.Name}} {
		if _, err := testdocker.RunCLI(t, sock, args...); err == nil || !strings.Contains(err.Error(), proxyMessage) {
			t.Errorf("docker %s through the proxy: %v, want the proxy's refusal", strings.Join(args, " "), err)
		}
	}
	unchanged(t, e, app.ID, after)
}

func TestRealStreams(t *testing.T) {
	e := testdocker.Start(t)
	ticker := e.StartContainer(t, testdocker.ContainerSpec{Env: []string{"TICK=50ms", "SECRET=hunter2"}})
	sock := serveUnix(t, newProxy(t, Config{Socket: e.Socket, AllowLogs: true}))
	closed := serveUnix(t, newProxy(t, Config{Socket: e.Socket}))

	t.Run("logs", func(t *testing.T) {
		out, err := testdocker.RunCLI(t, sock, "logs", ticker.Name)
		if err != nil || !strings.Contains(out, "sleeper ready") {
			t.Errorf("docker logs with AllowLogs: %q, %v", out, err)
		}
		if _, err := testdocker.RunCLI(t, closed, "logs", ticker.Name); err == nil || !strings.Contains(err.Error(), "allow_logs") {
			t.Errorf("docker logs without AllowLogs: %v, want the proxy's refusal", err)
		}
	})
	t.Run("followed logs stream", func(t *testing.T) {
		rc := dialRaw(t, "unix", sock)
		rc.send(req("GET", "/v1.41/containers/"+ticker.ID+"/logs?follow=1&stdout=1&tail=0"))
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("follow logs: %v %v", resp, err)
		}
		// The stream never ends; ticks arriving prove it is not held back.
		lines := bufio.NewScanner(resp.Body)
		ticks := 0
		for ticks < 3 && lines.Scan() {
			if strings.Contains(lines.Text(), "tick ") {
				ticks++
			}
		}
		if ticks < 3 {
			t.Errorf("saw %d ticks before %v", ticks, lines.Err())
		}
	})
	t.Run("events stream", func(t *testing.T) {
		rc := dialRaw(t, "unix", sock)
		filters := url.QueryEscape(`{"type":["container"],"event":["start"]}`)
		rc.send(req("GET", "/v1.41/events?filters="+filters))
		resp, err := http.ReadResponse(rc.br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("events: %v %v", resp, err)
		}
		started := e.StartContainer(t, testdocker.ContainerSpec{})
		dec := json.NewDecoder(resp.Body)
		for {
			var ev struct {
				Action string
				Actor  struct{ ID string }
			}
			if err := dec.Decode(&ev); err != nil {
				t.Fatalf("no start event for %s: %v", started.Name, err)
			}
			if ev.Action == "start" && ev.Actor.ID == started.ID {
				break
			}
		}
	})
}

func TestRealDiscover(t *testing.T) {
	e, app, _ := realSetup(t, Config{})
	p := newProxy(t, Config{Socket: e.Socket})
	t.Cleanup(p.CloseIdleConnections)
	list, err := p.Discover(testContext(t))
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	i := slices.IndexFunc(list, func(c Container) bool { return c.ID == app.ID })
	if i < 0 {
		t.Fatalf("Discover did not list %s: %+v", app.Name, list)
	}
	c := list[i]
	if !slices.Equal(c.Names, []string{app.Name}) || c.Image != e.Image(t) || c.State != "running" ||
		!strings.HasPrefix(c.Status, "Up") || c.Labels["leash.test"] != "real" {
		t.Errorf("Discover listed %+v", c)
	}
}

// dialAndDo sends one raw request over the unix socket at sock.
func dialAndDo(t *testing.T, sock, raw string) (*http.Response, string) {
	t.Helper()
	rc := dialRaw(t, "unix", sock)
	rc.send(raw)
	method, _, _ := strings.Cut(raw, " ")
	return rc.read(method)
}
