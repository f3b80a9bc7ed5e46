package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseGatewayURL(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "https://gw.example:8443", want: "https://gw.example:8443"},
		{in: "https://gw.example:8443/", want: "https://gw.example:8443"},
		{in: "http://127.0.0.1:8443", want: "http://127.0.0.1:8443"},
		{in: "", wantErr: "leash login"},
		{in: "ftp://gw", wantErr: "scheme must be https"},
		{in: "https://", wantErr: "host is missing"},
		{in: "https://user:pw@gw", wantErr: "credentials"},
		{in: "https://gw/v1/runners", wantErr: "path, query and fragment"},
		{in: "https://gw?x=1", wantErr: "path, query and fragment"},
		{in: "gw.example:8443", wantErr: "scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := parseGatewayURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != tt.want {
				t.Fatalf("got %s, want %s", u, tt.want)
			}
		})
	}
}

func TestLoadClientConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "gateway: https://gw:8443\nca: /etc/leash/ca.crt\ncert: /etc/leash/op.crt\nkey: /etc/leash/op.key\n"
	tests := []struct {
		name, body string
		mode       os.FileMode
		wantErr    []string // every problem must be named
	}{
		{name: "good", body: good, mode: 0o600},
		{name: "readable", body: good, mode: 0o644, wantErr: []string{"permissions"}},
		{name: "unknown key", body: good + "password: x\n", mode: 0o600, wantErr: []string{"password"}},
		{name: "all problems", body: "gateway: ftp://gw\ncert: op.crt\n", mode: 0o600,
			wantErr: []string{"scheme", "cert and key go together", `"op.crt" must be absolute`}},
		{name: "not yaml", body: "{{{", mode: 0o600, wantErr: []string{"client config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tt.name, " ", "-")+".yaml", tt.body, tt.mode)
			cfg, err := loadClientConfig(p)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Gateway != "https://gw:8443" || cfg.Key != "/etc/leash/op.key" {
					t.Fatalf("config read wrong: %+v", cfg)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %v", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := loadClientConfig(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "leash login") {
		t.Fatalf("missing config: err = %v, want a hint to run leash login", err)
	}
}
