package dockerproxy

import (
	"errors"
	"strings"
	"testing"
)

func TestNewChecksConfig(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		unsafe bool     // want ErrUnsafeWrite too
		says   []string // in the error; none means New succeeds
	}{
		{"zero value", Config{}, false, nil},
		{"every safe write", Config{Socket: "/run/docker.sock", AllowLogs: true, AllowedWrites: SafeWrites()}, false, nil},
		{"relative socket", Config{Socket: "docker.sock"}, false, []string{`socket "docker.sock"`}},
		{"exec", Config{AllowedWrites: []string{"POST /containers/{id}/exec"}}, true, []string{"run a process in"}},
		{"exec start", Config{AllowedWrites: []string{"POST /exec/{id}/start"}}, true, []string{"run a process in"}},
		{"attach", Config{AllowedWrites: []string{"POST /containers/{id}/attach"}}, true, []string{"run a process in"}},
		{"archive", Config{AllowedWrites: []string{"PUT /containers/{id}/archive"}}, true, []string{"only POST"}},
		{"create", Config{AllowedWrites: []string{"POST /containers/create"}}, true, []string{"not a container lifecycle write"}},
		{"delete", Config{AllowedWrites: []string{"DELETE /containers/{id}"}}, true, []string{"only POST"}},
		{"update", Config{AllowedWrites: []string{"POST /containers/{id}/update"}}, true, []string{"not a container lifecycle write"}},
		{"build", Config{AllowedWrites: []string{"POST /build"}}, true, nil},
		{"a read", Config{AllowedWrites: []string{"GET /containers/{id}/archive"}}, true, []string{"reads are not configured here"}},
		{"lower-case method", Config{AllowedWrites: []string{"post /containers/{id}/restart"}}, true, []string{"only POST"}},
		{"versioned pattern", Config{AllowedWrites: []string{"POST /v1.41/containers/{id}/restart"}}, true, nil},
		{"concrete id", Config{AllowedWrites: []string{"POST /containers/web/restart"}}, true, nil},
		{"path only", Config{AllowedWrites: []string{"/containers/{id}/restart"}}, true, nil},
		{"extra spaces", Config{AllowedWrites: []string{"POST  /containers/{id}/restart"}}, true, nil},
		{"trailing slash", Config{AllowedWrites: []string{"POST /containers/{id}/restart/"}}, true, nil},
		{"every problem at once",
			Config{Socket: "rel", AllowedWrites: []string{"POST /containers/{id}/restart", "POST /containers/{id}/exec", "DELETE /images/{name}"}},
			true, []string{`socket "rel"`, `"POST /containers/{id}/exec"`, `"DELETE /images/{name}"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg)
			wantErr := tt.unsafe || len(tt.says) > 0
			if !wantErr {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				p.CloseIdleConnections()
				return
			}
			if err == nil {
				t.Fatalf("New accepted %+v", tt.cfg)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v is not ErrConfig", err)
			}
			if tt.unsafe != errors.Is(err, ErrUnsafeWrite) {
				t.Errorf("errors.Is(%v, ErrUnsafeWrite) = %v, want %v", err, !tt.unsafe, tt.unsafe)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if tt.unsafe && !strings.Contains(err.Error(), "POST /containers/{id}/restart") {
				t.Errorf("error %q does not list the allowed entries", err)
			}
		})
	}
}

func TestNewDoesNotChangeConfig(t *testing.T) {
	cfg := Config{AllowedWrites: []string{"POST /containers/{id}/stop"}}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket != "" {
		t.Errorf("New changed the caller's Config")
	}
	if p.cfg.Socket != DefaultSocket {
		t.Errorf("socket %q, want %q", p.cfg.Socket, DefaultSocket)
	}
}
