package runner

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/leashpki/leash/protocol"
	"github.com/leashpki/leash/runner/dockerproxy"
	leashtls "github.com/leashpki/leash/tls"
)

// Config is the runner's configuration. Precedence: flags, then LEASH_*
// environment variables, then the YAML file named by -config /
// LEASH_CONFIG, then defaults.
type Config struct {
	Name      string            `yaml:"name"`
	Gateway   string            `yaml:"gateway"`    // API URL
	EnrollURL string            `yaml:"enroll_url"` // default: gateway host, port 8444
	Token     string            `yaml:"-"`          // never in a file
	TokenFile string            `yaml:"token_file"`
	StateDir  string            `yaml:"state_dir"`
	Labels    map[string]string `yaml:"labels"`
	// Commands are the only programs exec jobs may run, by name: argv
	// lists, never shell lines.
	Commands map[string][]string `yaml:"commands"`
	// Services are the only TCP addresses the tunnel may reach, by name
	// (e.g. db: 127.0.0.1:5432). The gateway asks for a name; the address
	// never comes from it.
	Services map[string]string `yaml:"services"`
	// Domains are the HTTP domains this runner serves through the gateway,
	// each an ordered list of routes to local applications.
	Domains map[string][]Route `yaml:"domains"`
	// SessionPorts are the ports on this host (127.0.0.1 only) that
	// operator sessions may reach. Unset: the defaults for the OS (Linux
	// and macOS 22 and 5900; Windows 3389, 5985, 5986 and 5900); an empty
	// list: none.
	SessionPorts []int `yaml:"session_ports"`
	// Docker, when set, offers this host's Docker Engine through the
	// tunnel, read-only and filtered by the runner (see dockerproxy).
	Docker *dockerproxy.Config `yaml:"docker"`
	// Bring-your-own certificates (FANGS style): no enrollment and no
	// automatic rotation; the files are re-read when replaced.
	TLSCA   string `yaml:"tls_ca"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`

	JobTimeout time.Duration `yaml:"job_timeout"` // default 5m
	LogLevel   string        `yaml:"log_level"`   // debug, info, warn, error
}

// DefaultJobTimeout bounds a job whose submission names no timeout.
const DefaultJobTimeout = 5 * time.Minute

// DefaultStateDir is where identity lives unless configured.
const DefaultStateDir = "/var/lib/leash-runner"

// envVars maps LEASH_* variables to the field they set.
var envNames = []string{"LEASH_NAME", "LEASH_GATEWAY", "LEASH_ENROLL_URL", "LEASH_TOKEN", "LEASH_TOKEN_FILE",
	"LEASH_STATE_DIR", "LEASH_LABELS", "LEASH_CONFIG", "LEASH_LOG_LEVEL", "LEASH_TLS_CA", "LEASH_TLS_CERT", "LEASH_TLS_KEY"}

// LoadConfig builds a Config from command-line args (without the program
// name) and the environment (os.Environ form). It does not validate.
func LoadConfig(args, environ []string, stderr io.Writer) (Config, error) {
	env := map[string]string{}
	var unknown []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "LEASH_") {
			continue
		}
		if !slices.Contains(envNames, k) {
			unknown = append(unknown, k)
			continue
		}
		env[k] = v
	}
	fs := flag.NewFlagSet("leash-runner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f Config
	var configPath, labels string
	fs.StringVar(&f.Name, "name", "", "runner id (the token's subject) [LEASH_NAME]")
	fs.StringVar(&f.Gateway, "gateway", "", "gateway API URL [LEASH_GATEWAY]")
	fs.StringVar(&f.Gateway, "orchestrator", "", "alias of -gateway (FANGS)")
	fs.StringVar(&f.EnrollURL, "enroll-url", "", "enrollment URL (default: gateway host, port 8444) [LEASH_ENROLL_URL]")
	fs.StringVar(&f.TokenFile, "token-file", "", "file holding a one-time enrollment token [LEASH_TOKEN_FILE]")
	fs.StringVar(&f.StateDir, "state-dir", "", "directory for key and certificate (default "+DefaultStateDir+") [LEASH_STATE_DIR]")
	fs.StringVar(&labels, "labels", "", "labels k=v,k=v [LEASH_LABELS]")
	fs.StringVar(&configPath, "config", "", "YAML config file [LEASH_CONFIG]")
	fs.StringVar(&f.TLSCA, "tls-ca", "", "CA bundle that verifies the gateway (bring-your-own certs)")
	fs.StringVar(&f.TLSCert, "tls-cert", "", "client certificate (bring-your-own certs)")
	fs.StringVar(&f.TLSKey, "tls-key", "", "client key (bring-your-own certs)")
	fs.StringVar(&f.LogLevel, "log-level", "", "debug, info, warn or error [LEASH_LOG_LEVEL]")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected arguments %q", ErrConfig, fs.Args())
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Config{}, fmt.Errorf("%w: unknown environment variables %s; known: %s", ErrConfig,
			strings.Join(unknown, ", "), strings.Join(envNames, ", "))
	}
	if configPath == "" {
		configPath = env["LEASH_CONFIG"]
	}
	var cfg Config
	if configPath != "" {
		b, err := os.ReadFile(configPath)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("%w: %s: %w", ErrConfig, configPath, err)
		}
	}
	pick := func(dst *string, flagVal, envKey string) {
		switch {
		case flagVal != "":
			*dst = flagVal
		case env[envKey] != "":
			*dst = env[envKey]
		}
	}
	pick(&cfg.Name, f.Name, "LEASH_NAME")
	pick(&cfg.Gateway, f.Gateway, "LEASH_GATEWAY")
	pick(&cfg.EnrollURL, f.EnrollURL, "LEASH_ENROLL_URL")
	pick(&cfg.TokenFile, f.TokenFile, "LEASH_TOKEN_FILE")
	pick(&cfg.StateDir, f.StateDir, "LEASH_STATE_DIR")
	pick(&cfg.TLSCA, f.TLSCA, "LEASH_TLS_CA")
	pick(&cfg.TLSCert, f.TLSCert, "LEASH_TLS_CERT")
	pick(&cfg.TLSKey, f.TLSKey, "LEASH_TLS_KEY")
	pick(&cfg.LogLevel, f.LogLevel, "LEASH_LOG_LEVEL")
	cfg.Token = env["LEASH_TOKEN"]
	if labels == "" {
		labels = env["LEASH_LABELS"]
	}
	if labels != "" {
		m, err := parseLabels(labels)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		cfg.Labels = m
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.JobTimeout == 0 {
		cfg.JobTimeout = DefaultJobTimeout
	}
	return cfg, nil
}

func parseLabels(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

// byoCerts reports whether the operator brought certificate files.
func (c Config) byoCerts() bool { return c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != "" }

// Validate returns every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if err := leashtls.ValidName(c.Name); err != nil {
		add("name (LEASH_NAME): %v", err)
	}
	u, err := url.Parse(c.Gateway)
	switch {
	case c.Gateway == "":
		add("gateway (LEASH_GATEWAY) is required, e.g. https://gateway.example:8443")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		add("gateway %q: want https://host:port (http only for a loopback gateway in plain mode)", c.Gateway)
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		add("gateway %q: plain http only to a loopback gateway (without TLS the runner merely claims its name); use https", c.Gateway)
	}
	if len(c.Labels) > protocol.MaxLabels {
		add("%d labels; at most %d", len(c.Labels), protocol.MaxLabels)
	}
	for k, v := range c.Labels {
		if k == "" || len(k)+len(v) > protocol.MaxLabelBytes {
			add("label %q: the key must not be empty and key plus value at most %d bytes", k, protocol.MaxLabelBytes)
		}
	}
	if c.EnrollURL != "" {
		if u, err := url.Parse(c.EnrollURL); err != nil || u.Scheme != "https" || u.Host == "" {
			add("enroll url %q: want https://host:port", c.EnrollURL)
		}
	}
	if c.Token != "" && c.TokenFile != "" {
		add("set LEASH_TOKEN or a token file, not both")
	}
	if c.byoCerts() {
		if c.TLSCert == "" || c.TLSKey == "" || c.TLSCA == "" {
			add("bring-your-own certificates need -tls-ca, -tls-cert and -tls-key together")
		}
		if c.Token != "" || c.TokenFile != "" {
			add("a token and -tls-cert/-tls-key exclude each other: enroll with the token or bring certificates")
		}
	}
	if c.StateDir == "" {
		add("state dir is empty")
	}
	for name, argv := range c.Commands {
		if err := leashtls.ValidName(name); err != nil {
			add("commands.%s: %v", name, err)
		}
		if len(argv) == 0 || argv[0] == "" {
			add("commands.%s: needs a program and its arguments as a list", name)
		}
	}
	for name, addr := range c.Services {
		if err := leashtls.ValidName(name); err != nil {
			add("services.%s: %v", name, err)
		}
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
			add("services.%s: %q is not host:port", name, addr)
		}
	}
	for _, p := range c.SessionPorts {
		if p < 1 || p > 65535 {
			add("session_ports: %d is not a TCP port", p)
		}
	}
	for name, routes := range c.Domains {
		if err := validDomainName(name); err != nil {
			add("domains.%s: %v", name, err)
		}
		if len(routes) == 0 {
			add("domains.%s: needs at least one route", name)
		}
		for i, r := range routes {
			if err := r.validate(); err != nil {
				add("domains.%s[%d]: %v", name, i, err)
			}
		}
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		add("log level %q: debug, info, warn or error", c.LogLevel)
	}
	if c.JobTimeout < 0 {
		add("job timeout is negative")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w:\n%w", ErrConfig, err)
	}
	return nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// validDomainName accepts lower-case DNS names (a leading "*." for a
// wildcard is not supported: each domain is served by name).
func validDomainName(name string) error {
	if name == "" || len(name) > 253 || strings.ToLower(name) != name {
		return errors.New("want a lower-case DNS name")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return fmt.Errorf("label %q is not a DNS label", label)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("label %q is not a DNS label", label)
			}
		}
	}
	return nil
}
