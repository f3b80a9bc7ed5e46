package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/leashpki/leash/protocol"
)

// dockerProxies reach runners' filtered Docker APIs through their tunnels:
// one HTTP transport per runner, whose connections are tunnel streams of
// kind docker. The runner's filter decides every request; the gateway adds
// nothing but the operator's identity in the runner's logs.
type dockerProxies struct {
	s  *Server
	mu sync.Mutex
	by map[string]*http.Transport
}

func newDockerProxies(s *Server) *dockerProxies {
	return &dockerProxies{s: s, by: map[string]*http.Transport{}}
}

func (dp *dockerProxies) transport(runner string) *http.Transport {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	if tr := dp.by[runner]; tr != nil {
		return tr
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dp.s.tunnels.dialKind(ctx, runner, protocol.StreamDocker, protocol.StreamDocker, "gateway")
		},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     time.Minute,
	}
	dp.by[runner] = tr
	return tr
}

func (dp *dockerProxies) closeAll() {
	dp.mu.Lock()
	defer dp.mu.Unlock()
	for _, tr := range dp.by {
		tr.CloseIdleConnections()
	}
}

// dockerAPI serves RouteDocker: the Docker Engine API of one runner,
// filtered by that runner, under /v1/runners/{id}/docker/.
func (s *Server) dockerAPI(w http.ResponseWriter, r *http.Request, c caller) error {
	runner := r.PathValue("id")
	if s.tunnels.get(runner) == nil {
		return errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "runner %s has no tunnel open", runner)
	}
	// The gateway's own check first: only a runner that declared its
	// Docker API is asked; the runner filters every request again.
	if err := s.checkDeclared(r.Context(), runner, protocol.StreamDocker); err != nil {
		return err
	}
	prefix := "/v1/runners/" + runner + "/docker"
	rest := strings.TrimPrefix(r.URL.EscapedPath(), prefix)
	if rest == r.URL.EscapedPath() || rest == "" {
		rest = "/"
	}
	proxy := &httputil.ReverseProxy{
		Transport:     s.docker.transport(runner),
		FlushInterval: -1, // events and followed logs stream as they come
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = &url.URL{Scheme: "http", Host: "docker", RawPath: rest, RawQuery: r.URL.RawQuery}
			pr.Out.URL.Path, _ = url.PathUnescape(rest)
			pr.Out.Host = "docker"
			pr.Out.Header.Del("Authorization")
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			s.writeError(w, r, streamError(runner, err))
		},
	}
	s.audit(r.Context(), c.actor(), "docker.request", runner, r.Method+" "+rest)
	proxy.ServeHTTP(w, r)
	return nil
}

// containers serves RouteContainers: what the runner's Docker Engine runs,
// discovered through its filtered API.
func (s *Server) containers(w http.ResponseWriter, r *http.Request, _ caller) error {
	out, err := s.listContainers(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listContainers asks the runner's filtered Docker API what it runs.
func (s *Server) listContainers(ctx context.Context, runner string) (protocol.ContainerList, error) {
	out := protocol.ContainerList{Runner: runner, Containers: []protocol.Container{}}
	if s.tunnels.get(runner) == nil {
		return out, errorf(http.StatusServiceUnavailable, protocol.CodeUnavailable, "runner %s has no tunnel open", runner)
	}
	if err := s.checkDeclared(ctx, runner, protocol.StreamDocker); err != nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/json?all=1", nil)
	if err != nil {
		return out, err
	}
	resp, err := (&http.Client{Transport: s.docker.transport(runner)}).Do(req)
	if err != nil {
		return out, streamError(runner, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return out, errorf(http.StatusBadGateway, protocol.CodeUnavailable, "runner %s docker: %s %s", runner, resp.Status, b)
	}
	var raw []struct {
		ID     string            `json:"Id"`
		Names  []string          `json:"Names"`
		Image  string            `json:"Image"`
		State  string            `json:"State"`
		Status string            `json:"Status"`
		Labels map[string]string `json:"Labels"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&raw); err != nil {
		return out, errorf(http.StatusBadGateway, protocol.CodeUnavailable, "runner %s docker: %v", runner, err)
	}
	for _, c := range raw {
		names := make([]string, 0, len(c.Names))
		for _, n := range c.Names {
			names = append(names, strings.TrimPrefix(n, "/"))
		}
		out.Containers = append(out.Containers, protocol.Container{ID: c.ID, Names: names, Image: c.Image,
			State: c.State, Status: c.Status, Labels: c.Labels})
	}
	return out, nil
}
