package testdocker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// ImageTag is the tag of the test image: FROM scratch, holding only the
// static sleeper binary as its entrypoint.
const ImageTag = "leash-testdocker/sleeper:latest"

// sleeperPackage is the program the test image runs.
const sleeperPackage = "github.com/leashpki/leash/internal/testdocker/sleeper"

// dockerfile builds the test image from a context holding the binary.
const dockerfile = `FROM scratch
COPY sleeper /sleeper
ENTRYPOINT ["/sleeper"]
`

// Image returns the tag of the test image, building it on first use.
func (e *Engine) Image(t testing.TB) string {
	t.Helper()
	e.imageMu.Lock()
	defer e.imageMu.Unlock()
	if e.image == "" && e.imageErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		e.imageErr = e.buildImage(ctx)
		if e.imageErr == nil {
			e.image = ImageTag
		}
	}
	if e.imageErr != nil {
		t.Fatalf("testdocker: %v", e.imageErr)
	}
	return e.image
}

// buildImage compiles the sleeper and has the engine build the image from
// it (POST /build with a tar context).
func (e *Engine) buildImage(ctx context.Context) error {
	bin, err := compileSleeper(ctx)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		body []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{"sleeper", 0o755, bin},
	}
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("build context: %w", err)
		}
		if _, err := tw.Write(f.body); err != nil {
			return fmt.Errorf("build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	q := url.Values{"t": {ImageTag}, "rm": {"1"}, "forcerm": {"1"}, "q": {"1"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://docker/build?"+q.Encode(), &buf)
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("build image: %s", readError(resp))
	}
	// The answer is a stream of JSON messages; a failed step is one with
	// an error, after a 200.
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("build image: read progress: %w", err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build image: %s", msg.Error)
		}
	}
}

// compileSleeper builds the sleeper as a static linux binary for the
// machine's architecture and returns it.
func compileSleeper(ctx context.Context) ([]byte, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("the go command is needed to build the test image: %w", err)
	}
	dir, err := os.MkdirTemp("", "leash-testdocker-build-")
	if err != nil {
		return nil, fmt.Errorf("build directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	out := filepath.Join(dir, "sleeper")
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, sleeperPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", sleeperPackage, err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("read the sleeper: %w", err)
	}
	return bin, nil
}

// ContainerSpec describes a container to run from the test image.
type ContainerSpec struct {
	Name   string            // default: leash-test-<random>
	Env    []string          // KEY=value
	Labels map[string]string // container labels
}

// Container is a running container of the test image.
type Container struct {
	ID   string // full hexadecimal id
	Name string // without Docker's leading "/"
}

// StartContainer creates and starts a container of the test image (with
// network mode none) and force-removes it when t ends.
func (e *Engine) StartContainer(t testing.TB, spec ContainerSpec) Container {
	t.Helper()
	image := e.Image(t)
	if spec.Name == "" {
		b := make([]byte, 6)
		if _, err := rand.Read(b); err != nil {
			t.Fatalf("testdocker: random container name: %v", err)
		}
		spec.Name = "leash-test-" + hex.EncodeToString(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	body, err := json.Marshal(map[string]any{
		"Image":       image,
		"Env":         spec.Env,
		"Labels":      spec.Labels,
		"StopTimeout": 2,
		"HostConfig":  map[string]any{"NetworkMode": "none"},
	})
	if err != nil {
		t.Fatalf("testdocker: %v", err)
	}
	var created struct {
		ID string `json:"Id"`
	}
	if err := e.call(ctx, http.MethodPost, "/containers/create?name="+url.QueryEscape(spec.Name), body, &created); err != nil {
		t.Fatalf("testdocker: create container %s: %v", spec.Name, err)
	}
	c := Container{ID: created.ID, Name: spec.Name}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		err := e.call(ctx, http.MethodDelete, "/containers/"+c.ID+"?force=1&v=1", nil, nil)
		var se *statusError
		if err != nil && !(errors.As(err, &se) && se.code == http.StatusNotFound) {
			t.Errorf("testdocker: remove container %s: %v", c.Name, err)
		}
	})
	if err := e.call(ctx, http.MethodPost, "/containers/"+c.ID+"/start", nil, nil); err != nil {
		t.Fatalf("testdocker: start container %s: %v", c.Name, err)
	}
	return c
}

// statusError is an engine answer outside 2xx.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

// call sends one API request with an optional JSON body and decodes a 2xx
// answer into out (when not nil).
func (e *Engine) call(ctx context.Context, method, path string, body []byte, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	resp, err := e.Request(ctx, method, path, r)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 != 2 {
		return &statusError{resp.StatusCode, readError(resp)}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// readError returns the message of an engine error answer.
func readError(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var m struct{ Message string }
	if json.Unmarshal(b, &m) == nil && m.Message != "" {
		return m.Message
	}
	return resp.Status + ": " + string(bytes.TrimSpace(b))
}
