package uibrowser

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leashpki/leash/internal/testharness"
)

// nginxConf is the proxy in front of the UI: TLS for the browser, the
// ui-proxy certificate towards the gateway, the person's name (fixed here;
// oauth2-proxy would set it) and the prefix.
const nginxConf = `%s
worker_processes 1;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  server {
    listen 127.0.0.1:%[3]d ssl;
    ssl_certificate %[4]s;
    ssl_certificate_key %[5]s;
    ssl_protocols TLSv1.2 TLSv1.3;
    location /leash/ {
      proxy_pass https://127.0.0.1:%[6]s/ui/;
      proxy_ssl_certificate %[7]s;
      proxy_ssl_certificate_key %[8]s;
      proxy_ssl_trusted_certificate %[9]s;
      proxy_ssl_verify on;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-User alice;
      proxy_set_header X-Forwarded-Email "";
      proxy_set_header X-Forwarded-Prefix /leash;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_buffering off;
      proxy_read_timeout 1h;
    }
  }
}
`

// nginx is one nginx process serving on Addr.
type nginx struct {
	Addr string
	cmd  *exec.Cmd
	done chan error
}

// startNginx writes the config, starts nginx in the foreground and waits
// until it answers; it is stopped and waited for in t.Cleanup.
func startNginx(t *testing.T, bin string, gw *testharness.Gateway, proxy *testharness.Client, certFile, keyFile string) *nginx {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close() // nginx binds it; a race with another process is unlikely on loopback
	_, apiPort, _ := net.SplitHostPort(strings.TrimPrefix(gw.APIURL, "https://"))
	user := ""
	if os.Geteuid() == 0 {
		// Workers would drop to nobody, who cannot read the test's
		// temp dir; this nginx only serves the test.
		user = "user root;"
	}
	conf := fmt.Sprintf(nginxConf, user, dir, port, certFile, keyFile, apiPort, proxy.CertFile, proxy.KeyFile, proxy.CAFile)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", "stderr", "-c", path, "-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+";")
	cmd.Stdout, cmd.Stderr = testWriter{t, "nginx: "}, testWriter{t, "nginx: "}
	cmd.WaitDelay = 5 * time.Second // a worker that outlives the master must not hold Wait
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	n := &nginx{Addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, done: make(chan error, 1)}
	go func() { n.done <- cmd.Wait() }()
	t.Cleanup(func() {
		// SIGTERM: the master stops its workers and exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-n.done
			t.Errorf("nginx did not stop on SIGTERM within 10s")
		}
	})
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: proxy.TLS.RootCAs, ServerName: "localhost"}}}
	defer client.CloseIdleConnections()
	testharness.Eventually(t, 15*time.Second, "nginx answering on "+n.Addr, func() bool {
		select {
		case err := <-n.done:
			n.done <- err
			t.Fatalf("nginx exited: %v", err)
		default:
		}
		resp, err := client.Get("https://" + n.Addr + "/leash/runners")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

type testWriter struct {
	t      *testing.T
	prefix string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(w.prefix + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
