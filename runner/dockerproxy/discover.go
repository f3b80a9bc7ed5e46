package dockerproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxDiscover bounds the container list Discover reads.
const maxDiscover = 32 << 20

// Container is a container the engine runs or holds.
type Container struct {
	ID     string            `json:"id"`
	Names  []string          `json:"names"` // without Docker's leading "/"
	Image  string            `json:"image"`
	State  string            `json:"state"`  // created, running, paused, restarting, removing, exited or dead
	Status string            `json:"status"` // e.g. "Up 2 hours", "Exited (0) 5 minutes ago"
	Labels map[string]string `json:"labels,omitempty"`
}

// Discover lists every container of the engine, running or not, newest
// first, through the proxy's socket. It bypasses the policy: it is the
// runner asking, not the gateway.
func (p *Proxy) Discover(ctx context.Context) ([]Container, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/json?all=1", nil)
	if err != nil {
		return nil, fmt.Errorf("discover containers: %w", err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("discover containers: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body := io.LimitReader(resp.Body, maxDiscover)
	if resp.StatusCode != http.StatusOK {
		var m struct{ Message string }
		b, _ := io.ReadAll(io.LimitReader(body, 64<<10))
		if json.Unmarshal(b, &m) != nil || m.Message == "" {
			m.Message = strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("discover containers: %w: %s: %s", ErrEngine, resp.Status, m.Message)
	}
	var list []struct {
		ID     string `json:"Id"`
		Names  []string
		Image  string
		State  string
		Status string
		Labels map[string]string
	}
	if err := json.NewDecoder(body).Decode(&list); err != nil {
		return nil, fmt.Errorf("discover containers: decode the list: %w", err)
	}
	out := make([]Container, 0, len(list))
	for _, c := range list {
		names := make([]string, len(c.Names))
		for i, n := range c.Names {
			names[i] = strings.TrimPrefix(n, "/")
		}
		out = append(out, Container{ID: c.ID, Names: names, Image: c.Image, State: c.State, Status: c.Status, Labels: c.Labels})
	}
	return out, nil
}
