package deploy

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testdocker"
	"github.com/leashpki/leash/protocol"
)

// maxRunnerImage is the bound on the runner image (Docker's MB).
const maxRunnerImage = 15_000_000

// nonRoot is the uid:gid both images run as (deploy/docker/passwd).
const nonRoot = "65532:65532"

// image is one built image of the kit.
type image struct {
	kind, bin, pkg, tag string
}

// TestImages builds the runner and gateway images FROM scratch around
// host-built static binaries, reports their sizes, then runs the gateway
// container (embedded CA, SQLite on a volume, mTLS), mints a token with the
// CLI inside it and starts the runner container with LEASH_TOKEN: the
// runner enrolls and is online, as the host's CLI sees it through the
// gateway's published port with an operator certificate.
func TestImages(t *testing.T) {
	engine := testdocker.Start(t)
	docker := func(args ...string) string {
		t.Helper()
		out, err := engine.CLI(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	sfx := randomSuffix(t)
	images := []*image{
		{kind: "runner", bin: "leash-runner", pkg: "./cmd/leash-runner"},
		{kind: "gateway", bin: "leash", pkg: "./cmd/leash"},
	}
	hostBin := t.TempDir()
	for _, img := range images {
		img.tag = fmt.Sprintf("leash-deploy-test/%s:%s", img.kind, sfx)
		ctx := stageContext(t, img)
		copyFile(t, filepath.Join(ctx, img.bin), filepath.Join(hostBin, img.bin), 0o755)
		began := time.Now()
		docker("build", "-q", "-f", filepath.Join(ctx, "Dockerfile"), "-t", img.tag, ctx)
		t.Cleanup(func() { _, _ = engine.CLI(t, "rmi", "-f", img.tag) })
		size, err := strconv.ParseInt(docker("image", "inspect", "-f", "{{.Size}}", img.tag), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("image %s: %.1f MB (%d bytes), built in %v", img.kind, float64(size)/1e6, size, time.Since(began).Round(time.Millisecond))
		if user := docker("image", "inspect", "-f", "{{.Config.User}}", img.tag); user != nonRoot {
			t.Errorf("image %s runs as %q, want %s", img.kind, user, nonRoot)
		}
		if img.kind == "runner" && size >= maxRunnerImage {
			t.Errorf("runner image is %d bytes, want < %d (15 MB)", size, maxRunnerImage)
		}
	}
	runnerImg, gatewayImg := images[0].tag, images[1].tag

	// Networking: a user-defined bridge where this engine can make one
	// (testdocker starts dockerd with --bridge=none, which only drops the
	// default bridge), else the host's network namespace.
	netName := "leash-deploy-" + sfx
	netArgs := func(alias string) []string { return []string{"--network", netName, "--network-alias", alias} }
	gwHost, apiPort, enrollPort := "gateway", "8443", "8444"
	if out, err := engine.CLI(t, "network", "create", "--driver", "bridge", netName); err != nil {
		t.Logf("no bridge network here, using host networking: %v %s", err, out)
		netArgs = func(string) []string { return []string{"--network", "host"} }
		gwHost, apiPort, enrollPort = "127.0.0.1", freePort(t), freePort(t)
	} else {
		t.Logf("networking: user-defined bridge %s", netName)
		t.Cleanup(func() { _, _ = engine.CLI(t, "network", "rm", netName) })
	}

	// The data dir and the CA password, owned by the images' user.
	dataDir, secretDir := t.TempDir(), t.TempDir()
	pwFile := filepath.Join(secretDir, "ca-password")
	if err := os.WriteFile(pwFile, []byte("deploy-test-"+sfx+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dataDir, pwFile} {
		if err := os.Chown(p, 65532, 65532); err != nil {
			t.Fatal(err)
		}
	}
	mounts := []string{"-v", dataDir + ":/var/lib/leash", "-v", pwFile + ":/run/secrets/leash-ca-password:ro"}
	hardening := []string{"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"}

	// leash ca init, once, in a one-shot container of the gateway image.
	initArgs := append(append([]string{"run", "--rm", "--network", "none"}, mounts...), gatewayImg, "ca", "init", "--name", "Leash Deploy Test")
	t.Logf("ca init: %s", docker(initArgs...))

	gwName, runnerName := "leash-gateway-"+sfx, "leash-runner-"+sfx
	gwArgs := append([]string{"run", "-d", "--name", gwName,
		// A handshake without SNI (by IP, as the host's CLI connects) gets
		// the first name's certificate.
		"-e", "LEASH_HOSTNAMES=" + hostnames(gwHost),
		"-e", "LEASH_LISTEN=:" + apiPort, "-e", "LEASH_ENROLL_LISTEN=:" + enrollPort,
		"-e", "LEASH_HEARTBEAT_INTERVAL=1s", "-e", "LEASH_OFFLINE_AFTER=5s"}, netArgs("gateway")...)
	if gwHost == "gateway" {
		gwArgs = append(gwArgs, "-p", "127.0.0.1::8443")
	} else {
		gwArgs = append(gwArgs, "-e", "LEASH_LISTEN=127.0.0.1:"+apiPort, "-e", "LEASH_ENROLL_LISTEN=127.0.0.1:"+enrollPort)
	}
	gwArgs = append(append(append(gwArgs, mounts...), hardening...), gatewayImg)
	docker(gwArgs...)
	t.Cleanup(func() { removeContainer(t, engine, gwName) })

	hostAPI := "127.0.0.1:" + apiPort
	if gwHost == "gateway" {
		eventually(t, 30*time.Second, "published API port", func() (bool, string) {
			out, err := engine.CLI(t, "port", gwName, "8443/tcp")
			if err != nil {
				return false, err.Error()
			}
			hostAPI = strings.Fields(out)[0]
			return true, ""
		})
	}

	// An operator certificate and an enrollment token, made by the CLI in
	// the running gateway container (the image has no shell: docker exec
	// runs the binary itself).
	docker("exec", gwName, "leash", "cert", "issue", "client", "--role", "operator", "--name", "deploy-test",
		"--cert-file", "/var/lib/leash/operator.crt", "--key-file", "/var/lib/leash/operator.key")
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(docker("exec", gwName, "leash", "token", "create", "--name", "deploy-runner", "--json")), &tok); err != nil || tok.Token == "" {
		t.Fatalf("token create: %v %+v", err, tok)
	}

	leash := filepath.Join(hostBin, "leash")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	eventually(t, 60*time.Second, "leash login against the gateway container", func() (bool, string) {
		out, err := runErr("", nil, leash, "login", "--config", cfg, "--cert", filepath.Join(dataDir, "operator.crt"),
			"--key", filepath.Join(dataDir, "operator.key"), "--ca", filepath.Join(dataDir, "ca", "root_ca.crt"), "https://"+hostAPI)
		return err == nil, out
	})

	stateVol := "leash-runner-state-" + sfx
	docker("volume", "create", stateVol)
	t.Cleanup(func() { _, _ = engine.CLI(t, "volume", "rm", "-f", stateVol) })
	runArgs := append([]string{"run", "-d", "--name", runnerName,
		"-e", "LEASH_NAME=deploy-runner", "-e", "LEASH_GATEWAY=https://" + gwHost + ":" + apiPort,
		"-e", "LEASH_TOKEN=" + tok.Token, "-v", stateVol + ":/var/lib/leash-runner"}, netArgs("runner")...)
	if gwHost != "gateway" {
		runArgs = append(runArgs, "-e", "LEASH_ENROLL_URL=https://127.0.0.1:"+enrollPort)
	}
	docker(append(append(runArgs, hardening...), runnerImg)...)
	t.Cleanup(func() { removeContainer(t, engine, runnerName) })

	// online: the runner is online with a certificate and the gateway has
	// heard from it after since.
	online := func(since time.Time) (bool, string) {
		out, err := runErr("", nil, leash, "runner", "list", "--json", "--config", cfg)
		if err != nil {
			return false, out
		}
		var list protocol.RunnerList
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return false, out
		}
		for _, r := range list.Runners {
			if r.ID == "deploy-runner" && r.Status == protocol.RunnerOnline && !r.CertNotAfter.IsZero() && r.LastSeen.After(since) {
				return true, ""
			}
		}
		return false, out
	}
	eventually(t, 60*time.Second, "runner container enrolled and online", func() (bool, string) { return online(time.Time{}) })
	t.Logf("runner container enrolled against the gateway container and is online")

	// A restarted runner keeps its identity from the volume: it comes back
	// online without a new token (the spent one is still in its env).
	docker("restart", "-t", "5", runnerName)
	restarted := time.Now()
	eventually(t, 60*time.Second, "restarted runner online again", func() (bool, string) {
		if state := docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", runnerName); state != "running 0" {
			return false, state
		}
		return online(restarted)
	})
	if logs := containerLogs(engine, runnerName); strings.Contains(logs, "enrollment token is needed") {
		t.Errorf("runner asked for a new token after a restart:\n%s", logs)
	}
}

// stageContext builds img's binary and lays out its build context: the
// Dockerfile from deploy/docker, the binary, the host's CA bundle, passwd,
// group and an empty state/.
func stageContext(t *testing.T, img *image) string {
	t.Helper()
	dir := t.TempDir()
	buildStatic(t, img.pkg, filepath.Join(dir, img.bin))
	assertStatic(t, filepath.Join(dir, img.bin))
	copyFile(t, filepath.Join("docker", img.kind+".Dockerfile"), filepath.Join(dir, "Dockerfile"), 0o644)
	copyFile(t, filepath.Join("docker", "passwd"), filepath.Join(dir, "passwd"), 0o644)
	copyFile(t, filepath.Join("docker", "group"), filepath.Join(dir, "group"), 0o644)
	bundle := "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(bundle); err != nil {
		t.Fatalf("the images bundle the host's CA certificates (Debian package ca-certificates): %v", err)
	}
	copyFile(t, bundle, filepath.Join(dir, "ca-certificates.crt"), 0o644)
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// assertStatic fails unless path is an ELF executable without a dynamic
// loader: FROM scratch has no libc.
func assertStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked", path)
		}
	}
}

// removeContainer removes a container, printing its log when the test
// failed.
func removeContainer(t *testing.T, engine *testdocker.Engine, name string) {
	if t.Failed() {
		t.Logf("logs of %s:\n%s", name, containerLogs(engine, name))
	}
	if _, err := engine.CLI(t, "rm", "-f", "-v", name); err != nil {
		t.Errorf("remove %s: %v", name, err)
	}
}

// hostnames lists the names of the gateway's certificate, 127.0.0.1
// first.
func hostnames(gwHost string) string {
	if gwHost == "127.0.0.1" {
		return "127.0.0.1,localhost"
	}
	return "127.0.0.1,localhost," + gwHost
}

// containerLogs returns a container's standard output and error (the
// binaries log to stderr, which engine.CLI does not return).
func containerLogs(engine *testdocker.Engine, name string) string {
	out, err := runErr("", []string{"DOCKER_HOST=unix://" + engine.Socket}, "docker", "logs", name)
	if err != nil {
		return fmt.Sprintf("docker logs %s: %v\n%s", name, err, out)
	}
	return out
}

// freePort returns a TCP port free on 127.0.0.1 right now (host
// networking only).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
