package cli_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/cli"
	"github.com/leashpki/leash/internal/testharness"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}

// serve runs 'leash gateway serve' until the test ends and returns the
// decoded "gateway listening" log line.
func serve(t *testing.T, dataDir string, args ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, cli.Env{Stdout: &out, Stderr: &errOut},
			append([]string{"leash", "--data-dir", dataDir, "gateway", "serve"}, args...))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("gateway serve exited %d after cancellation: %s", code, errOut.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("gateway serve did not stop within 20s")
		}
	})
	var listening map[string]any
	testharness.Eventually(t, 20*time.Second, "gateway listening log line", func() bool {
		select {
		case code := <-done:
			t.Fatalf("gateway serve exited with %d: %s", code, errOut.String())
		default:
		}
		sc := bufio.NewScanner(strings.NewReader(errOut.String()))
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("log line is not JSON: %q", sc.Text())
			}
			if line["msg"] == "gateway listening" {
				listening = line
				return true
			}
		}
		return false
	})
	return listening
}

// TestGatewayServe: the serve command in mTLS mode on the embedded CA
// needs no files, logs its address and scheme as JSON, completes no
// handshake without a client certificate and answers one with an operator
// certificate; settings follow flags > env > file > defaults.
func TestGatewayServe(t *testing.T) {
	dataDir := t.TempDir()
	mustLeash(t, "--data-dir", dataDir, "ca", "init", "--name", "Serve Test", "--insecure-no-password")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "op.crt"), filepath.Join(dir, "op.key")
	mustLeash(t, "--data-dir", dataDir, "cert", "issue", "client", "--role", "operator", "--name", "op", "--cert-file", certFile, "--key-file", keyFile)

	fileAddr, envAddr, flagAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cfgFile := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfgFile, []byte("listen: "+fileAddr+"\nenroll_listen: \"off\"\nmode: mtls\nheartbeat_interval: 2s\noffline_after: 6s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("env over file", func(t *testing.T) {
		t.Setenv("LEASH_LISTEN", envAddr)
		line := serve(t, dataDir, "--config", cfgFile)
		if line["addr"] != envAddr || line["scheme"] != "https (mTLS)" {
			t.Fatalf("listening line %v; want addr %s scheme https (mTLS)", line, envAddr)
		}
	})
	t.Run("flag over env", func(t *testing.T) {
		t.Setenv("LEASH_LISTEN", envAddr)
		line := serve(t, dataDir, "--config", cfgFile, "--listen", flagAddr)
		if line["addr"] != flagAddr {
			t.Fatalf("listening line %v; want addr %s", line, flagAddr)
		}
		roots := x509.NewCertPool()
		rootPEM, err := os.ReadFile(filepath.Join(dataDir, "ca", "root_ca.crt"))
		if err != nil || !roots.AppendCertsFromPEM(rootPEM) {
			t.Fatalf("root: %v", err)
		}
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}}}
		resp, err := withCert.Get("https://" + flagAddr + "/v1/health")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("health with an operator certificate: %v %v", err, resp)
		}
		_ = resp.Body.Close()
		withCert.CloseIdleConnections()
		anonymous := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
		if _, err := anonymous.Get("https://" + flagAddr + "/v1/health"); err == nil {
			t.Fatal("mTLS gateway answered a client without a certificate")
		}
	})
	t.Run("file over defaults", func(t *testing.T) {
		line := serve(t, dataDir, "--config", cfgFile)
		if line["addr"] != fileAddr {
			t.Fatalf("listening line %v; want addr %s", line, fileAddr)
		}
	})
}

// TestGatewayServeRefusesBadConfig: unknown keys and unsafe settings are
// refused before anything listens, every problem at once.
func TestGatewayServeRefusesBadConfig(t *testing.T) {
	dataDir := t.TempDir()
	mustLeash(t, "--data-dir", dataDir, "ca", "init", "--name", "Serve Test", "--insecure-no-password")
	badFile := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badFile, []byte("listen: 127.0.0.1:0\nlisten_port: 8443\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown key in the file", []string{"--config", badFile}, []string{"listen_port"}},
		{"several problems at once", []string{"--mode", "plain", "--listen", "0.0.0.0:0", "--tls-cert", "x.crt",
			"--heartbeat-interval", "20s", "--offline-after", "10s"},
			[]string{"plain mode on 0.0.0.0:0", "tls cert and tls key go together", "offline after (10s) must be longer"}},
		{"client CA without mtls", []string{"--mode", "https", "--listen", "127.0.0.1:0", "--tls-client-ca", "ca.crt"},
			[]string{"client authentication would be silently off"}},
		{"unknown mode", []string{"--mode", "tls"}, []string{"tls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := leash(t, append([]string{"--data-dir", dataDir, "gateway", "serve"}, tt.args...)...)
			if code == 0 {
				t.Fatal("bad configuration accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("error does not mention %q:\n%s", w, errOut)
				}
			}
		})
	}
}
