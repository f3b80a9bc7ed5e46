package runner

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeFile writes content to name in a fresh temporary directory and
// returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfigPrecedence(t *testing.T) {
	const fileYAML = `
name: file-name
gateway: https://file.example:8443
enroll_url: https://file.example:8444
token_file: /file/token
state_dir: /file/state
labels: {from: file}
commands:
  uptime: [uptime]
job_timeout: 30s
log_level: warn
`
	const otherYAML = "name: other-file\n"
	tests := []struct {
		name    string
		args    []string // "@file" and "@other" become the config files' paths
		environ []string
		want    Config
	}{
		{"defaults", nil, nil,
			Config{StateDir: DefaultStateDir, JobTimeout: 5 * time.Minute}},
		{"non-LEASH environment is ignored", nil, []string{"PATH=/bin", "HOME=/root", "LEASHY=1"},
			Config{StateDir: DefaultStateDir, JobTimeout: 5 * time.Minute}},
		{"file over defaults", []string{"-config", "@file"}, nil,
			Config{Name: "file-name", Gateway: "https://file.example:8443", EnrollURL: "https://file.example:8444",
				TokenFile: "/file/token", StateDir: "/file/state", Labels: map[string]string{"from": "file"},
				Commands: map[string][]string{"uptime": {"uptime"}}, JobTimeout: 30 * time.Second, LogLevel: "warn"}},
		{"environment over file", []string{"-config", "@file"},
			[]string{"LEASH_NAME=env-name", "LEASH_GATEWAY=https://env.example:8443", "LEASH_STATE_DIR=/env/state",
				"LEASH_LABELS=from=env", "LEASH_LOG_LEVEL=debug", "LEASH_TOKEN=tok"},
			Config{Name: "env-name", Gateway: "https://env.example:8443", EnrollURL: "https://file.example:8444",
				Token: "tok", TokenFile: "/file/token", StateDir: "/env/state", Labels: map[string]string{"from": "env"},
				Commands: map[string][]string{"uptime": {"uptime"}}, JobTimeout: 30 * time.Second, LogLevel: "debug"}},
		{"flags over environment", []string{"-config", "@file", "-name", "flag-name", "-gateway", "https://flag.example:8443",
			"-state-dir", "/flag/state", "-labels", "from=flag", "-log-level", "error", "-enroll-url", "https://flag.example:1"},
			[]string{"LEASH_NAME=env-name", "LEASH_GATEWAY=https://env.example:8443", "LEASH_STATE_DIR=/env/state",
				"LEASH_LABELS=from=env", "LEASH_LOG_LEVEL=debug", "LEASH_ENROLL_URL=https://env.example:1"},
			Config{Name: "flag-name", Gateway: "https://flag.example:8443", EnrollURL: "https://flag.example:1",
				TokenFile: "/file/token", StateDir: "/flag/state", Labels: map[string]string{"from": "flag"},
				Commands: map[string][]string{"uptime": {"uptime"}}, JobTimeout: 30 * time.Second, LogLevel: "error"}},
		{"certificate files from flags and environment", []string{"-tls-cert", "/flag/cert.pem"},
			[]string{"LEASH_TLS_CERT=/env/cert.pem", "LEASH_TLS_KEY=/env/key.pem", "LEASH_TLS_CA=/env/ca.pem"},
			Config{TLSCA: "/env/ca.pem", TLSCert: "/flag/cert.pem", TLSKey: "/env/key.pem",
				StateDir: DefaultStateDir, JobTimeout: 5 * time.Minute}},
		{"LEASH_CONFIG names the file", nil, []string{"LEASH_CONFIG=@other"},
			Config{Name: "other-file", StateDir: DefaultStateDir, JobTimeout: 5 * time.Minute}},
		{"-config over LEASH_CONFIG", []string{"-config", "@other"}, []string{"LEASH_CONFIG=/does/not/exist.yaml"},
			Config{Name: "other-file", StateDir: DefaultStateDir, JobTimeout: 5 * time.Minute}},
		{"token file from environment", nil, []string{"LEASH_TOKEN_FILE=/env/token"},
			Config{TokenFile: "/env/token", StateDir: DefaultStateDir, JobTimeout: 5 * time.Minute}},
		{"orchestrator is an alias of gateway", []string{"-orchestrator", "https://fangs.example:8443"},
			[]string{"LEASH_GATEWAY=https://env.example:8443"},
			Config{Gateway: "https://fangs.example:8443", StateDir: DefaultStateDir, JobTimeout: 5 * time.Minute}},
	}
	file := writeFile(t, "runner.yaml", fileYAML)
	other := writeFile(t, "other.yaml", otherYAML)
	subst := func(ss []string) []string {
		var out []string
		for _, s := range ss {
			s = strings.ReplaceAll(s, "@file", file)
			out = append(out, strings.ReplaceAll(s, "@other", other))
		}
		return out
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadConfig(subst(tt.args), subst(tt.environ), io.Discard)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("LoadConfig:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoadConfigRejects(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		environ []string
		file    string // YAML; when set, passed with -config
		want    []string
	}{
		{"unknown LEASH_ variable", nil, []string{"LEASH_NAME=r1", "LEASH_GATEWAY_URL=https://g:8443", "LEASH_TOKN=x"},
			"", []string{"LEASH_GATEWAY_URL", "LEASH_TOKN", "unknown environment variables"}},
		{"unknown YAML key", nil, nil, "name: r1\ngatway: https://g:8443\n", []string{"gatway"}},
		{"token in a file", nil, nil, "token: secret\n", []string{"token"}},
		{"YAML of the wrong shape", nil, nil, "commands:\n  up: uptime\n", []string{"runner.yaml", "line 2"}},
		{"missing config file", []string{"-config", "/does/not/exist.yaml"}, nil, "", []string{"exist.yaml"}},
		{"unknown flag", []string{"-tokn", "x"}, nil, "", []string{"tokn"}},
		{"token is no flag", []string{"-token", "x"}, nil, "", []string{"token"}},
		{"positional arguments", []string{"-name", "r1", "extra"}, nil, "", []string{"extra"}},
		{"bad labels flag", []string{"-labels", "a=1,b"}, nil, "", []string{`label "b"`}},
		{"bad labels variable", nil, []string{"LEASH_LABELS==x"}, "", []string{`label "=x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeFile(t, "runner.yaml", tt.file)}, args...)
			}
			_, err := LoadConfig(args, tt.environ, io.Discard)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("LoadConfig: got %v, want an error wrapping ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadConfigEmptyFile(t *testing.T) {
	got, err := LoadConfig([]string{"-config", writeFile(t, "empty.yaml", "")}, nil, io.Discard)
	if err != nil {
		t.Fatalf("an empty config file: %v", err)
	}
	if got.StateDir != DefaultStateDir || got.JobTimeout != 5*time.Minute {
		t.Errorf("an empty config file gives %+v, want the defaults", got)
	}
}

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{in: "env=prod", want: map[string]string{"env": "prod"}},
		{in: "env=prod,zone=eu-1", want: map[string]string{"env": "prod", "zone": "eu-1"}},
		{in: " env=prod , zone=eu-1 ", want: map[string]string{"env": "prod", "zone": "eu-1"}},
		{in: "empty=", want: map[string]string{"empty": ""}},
		{in: "expr=a=b", want: map[string]string{"expr": "a=b"}},
		{in: "k=1,k=2", want: map[string]string{"k": "2"}},
		{in: "novalue", wantErr: `label "novalue"`},
		{in: "=v", wantErr: `label "=v"`},
		{in: "a=1,", wantErr: `label ""`},
		{in: "a=1,,b=2", wantErr: `label ""`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseLabels(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseLabels(%q) = %v, %v; want an error mentioning %s", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseLabels(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseLabels(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// validConfig passes Validate; cases change one thing.
func validConfig() Config {
	return Config{Name: "runner-1", Gateway: "https://gw.example:8443", StateDir: "/var/lib/leash-runner",
		JobTimeout: 5 * time.Minute}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"plain loopback gateway", func(c *Config) { c.Gateway = "http://127.0.0.1:8080" }, ""},
		{"gateway with path", func(c *Config) { c.Gateway = "https://gw.example:8443/leash/" }, ""},
		{"enroll url", func(c *Config) { c.EnrollURL = "https://gw.example:8444" }, ""},
		{"token", func(c *Config) { c.Token = "tok" }, ""},
		{"token file", func(c *Config) { c.TokenFile = "/run/secrets/token" }, ""},
		{"log levels", func(c *Config) { c.LogLevel = "debug" }, ""},
		{"zero job timeout", func(c *Config) { c.JobTimeout = 0 }, ""},
		{"commands", func(c *Config) {
			c.Commands = map[string][]string{"uptime": {"uptime"}, "disk-free": {"df", "-h"}}
		}, ""},

		{"no name", func(c *Config) { c.Name = "" }, "name (LEASH_NAME)"},
		{"bad name", func(c *Config) { c.Name = "Runner 1" }, "name (LEASH_NAME)"},
		{"no gateway", func(c *Config) { c.Gateway = "" }, "gateway (LEASH_GATEWAY) is required"},
		{"gateway without scheme", func(c *Config) { c.Gateway = "gw.example:8443" }, `gateway "gw.example:8443"`},
		{"gateway of another scheme", func(c *Config) { c.Gateway = "ftp://gw.example" }, `gateway "ftp://gw.example"`},
		{"gateway without host", func(c *Config) { c.Gateway = "https:///v1" }, `gateway "https:///v1"`},
		{"gateway unparsable", func(c *Config) { c.Gateway = "https://gw example" }, `gateway "https://gw example"`},
		{"plain enroll url", func(c *Config) { c.EnrollURL = "http://gw.example:8444" }, "enroll url"},
		{"token and token file", func(c *Config) { c.Token, c.TokenFile = "tok", "/tok" }, "not both"},
		{"empty state dir", func(c *Config) { c.StateDir = "" }, "state dir is empty"},
		{"unknown log level", func(c *Config) { c.LogLevel = "verbose" }, `log level "verbose"`},
		{"negative job timeout", func(c *Config) { c.JobTimeout = -time.Second }, "job timeout is negative"},
		{"command name", func(c *Config) { c.Commands = map[string][]string{"Bad Name": {"true"}} }, "commands.Bad Name"},
		{"command without argv", func(c *Config) { c.Commands = map[string][]string{"up": nil} }, "commands.up: needs a program"},
		{"command with empty program", func(c *Config) { c.Commands = map[string][]string{"up": {"", "-x"}} }, "commands.up: needs a program"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want == "":
			case !errors.Is(err, ErrConfig):
				t.Fatalf("Validate: got %v, want an error wrapping ErrConfig", err)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate: %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestConfigValidateBringYourOwnCertificates(t *testing.T) {
	const need = "need -tls-ca, -tls-cert and -tls-key together"
	const exclusive = "exclude each other"
	tests := []struct {
		name                      string
		ca, cert, key, token, tfl string
		want                      []string
	}{
		{"all three", "ca.pem", "cert.pem", "key.pem", "", "", nil},
		{"cert only", "", "cert.pem", "", "", "", []string{need}},
		{"key only", "", "", "key.pem", "", "", []string{need}},
		{"cert and key without ca", "", "cert.pem", "key.pem", "", "", []string{need}},
		{"ca and cert without key", "ca.pem", "cert.pem", "", "", "", []string{need}},
		{"ca and key without cert", "ca.pem", "", "key.pem", "", "", []string{need}},
		{"with a token", "ca.pem", "cert.pem", "key.pem", "tok", "", []string{exclusive}},
		{"with a token file", "ca.pem", "cert.pem", "key.pem", "", "/tok", []string{exclusive}},
		{"incomplete and a token", "", "cert.pem", "", "tok", "", []string{need, exclusive}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			c.TLSCA, c.TLSCert, c.TLSKey, c.Token, c.TokenFile = tt.ca, tt.cert, tt.key, tt.token, tt.tfl
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate: got %v, want an error wrapping ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	c := Config{
		Name:      "Not Valid",
		Gateway:   "ftp://gw.example",
		EnrollURL: "http://gw.example:8444",
		Token:     "tok",
		TokenFile: "/tok",
		TLSCert:   "cert.pem",
		Commands:  map[string][]string{"up": {}},
		LogLevel:  "loud",
		// StateDir empty
		JobTimeout: -time.Minute,
	}
	before := c
	err := c.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Validate: got %v, want an error wrapping ErrConfig", err)
	}
	for _, want := range []string{
		"name (LEASH_NAME)",
		`gateway "ftp://gw.example"`,
		`enroll url "http://gw.example:8444"`,
		"not both",
		"need -tls-ca, -tls-cert and -tls-key together",
		"exclude each other",
		"state dir is empty",
		"commands.up: needs a program",
		`log level "loud"`,
		"job timeout is negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %q:\n%v", want, err)
		}
	}
	if !reflect.DeepEqual(c, before) {
		t.Errorf("Validate changed the config: %+v", c)
	}
}
