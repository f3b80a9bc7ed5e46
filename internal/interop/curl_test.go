package interop

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/internal/testenv"
	leashtls "github.com/leashpki/leash/tls"
)

// syncBuffer collects the server's error log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// mtlsServer is the tiny test server: leashtls in mTLS mode, server
// certificate from files through a FileSource, revocation from the CA.
type mtlsServer struct {
	url    string
	errLog *syncBuffer
}

func startServer(t *testing.T, p *pki, server *leaf) *mtlsServer {
	t.Helper()
	return startServerWith(t, p, server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := leashtls.PeerIdentity(*r.TLS)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "hello %s\n", id)
	}))
}

// startServerWith is startServer with the handler of the caller's choice.
func startServerWith(t *testing.T, p *pki, server *leaf, h http.Handler) *mtlsServer {
	t.Helper()
	src, err := leashtls.NewFileSource(server.chain, server.keyf)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.auth.Root())
	cfg, err := leashtls.ServerConfig(leashtls.ServerOptions{
		Mode: leashtls.ModeMTLS, Certificate: src.GetCertificate, ClientCAs: roots, Revocation: p.auth,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errLog := &syncBuffer{}
	srv := &http.Server{
		TLSConfig:         cfg,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(errLog, "", 0),
		Handler:           h,
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return &mtlsServer{url: "https://127.0.0.1:" + portOf(ln.Addr()) + "/", errLog: errLog}
}

func portOf(a net.Addr) string { return fmt.Sprint(a.(*net.TCPAddr).Port) }

// curlResult is what curl printed and how it exited.
type curlResult struct {
	out  string
	code int // curl exit code; 0 = transfer done
}

func curl(t *testing.T, bin string, args ...string) curlResult {
	t.Helper()
	base := []string{"--silent", "--show-error", "--max-time", "10", "--noproxy", "*"}
	out, err := run(t, bin, append(base, args...)...)
	code := 0
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run curl: %v", err)
	}
	return curlResult{out: out, code: code}
}

// TestCurlTriplet is the FANGS triplet against a leashtls mTLS server, plus
// the hostile certificates: foreign CA, expired, revoked, serverAuth-only.
func TestCurlTriplet(t *testing.T) {
	curlBin := testenv.RequireTool(t, "curl", "curl")
	p := newPKI(t, "Interop curl")
	server := p.issue(t, "server", ca.IssueRequest{Profile: "server", Hosts: []string{"127.0.0.1", "localhost"}})
	runner := p.issue(t, "runner", ca.IssueRequest{Profile: "runner", Name: "web-1"})
	s := startServer(t, p, server)
	withCA := []string{"--cacert", p.path("root.pem")}

	// 1. Plain HTTP to the HTTPS port.
	plain := curl(t, curlBin, "http://"+strings.TrimPrefix(s.url, "https://"))
	if !strings.Contains(plain.out, "Client sent an HTTP request to an HTTPS server") {
		t.Fatalf("plain HTTP: exit %d, output %q", plain.code, plain.out)
	}
	// 2. HTTPS without a client certificate: the handshake fails.
	before := len(s.errLog.String())
	noCert := curl(t, curlBin, append(withCA, "--write-out", "\n%{http_code}", s.url)...)
	if noCert.code == 0 || strings.Contains(noCert.out, "hello") {
		t.Fatalf("no client cert: exit %d, output %q; want a failed handshake", noCert.code, noCert.out)
	}
	if logged := waitForLog(t, s.errLog, before); !strings.Contains(logged, "TLS handshake error") ||
		!strings.Contains(logged, "certificate") {
		t.Fatalf("server log %q does not show the handshake refusing a missing certificate", logged)
	}
	// 3. Full mTLS: 200 and the server knows who we are.
	ok := curl(t, curlBin, append(withCA, "--cert", runner.chain, "--key", runner.keyf,
		"--write-out", "\n%{http_code}", s.url)...)
	if ok.code != 0 || !strings.HasSuffix(ok.out, "200") || !strings.Contains(ok.out, "hello leash://runner/web-1") {
		t.Fatalf("mTLS: exit %d, output %q", ok.code, ok.out)
	}

	// Hostile client certificates, each refused during the handshake.
	foreign := newPKI(t, "Foreign").issue(t, "foreign", ca.IssueRequest{Profile: "runner", Name: "web-1"})
	expired := p.signExpired(t, "expired", "web-1")
	revoked := p.issue(t, "revoked", ca.IssueRequest{Profile: "runner", Name: "web-2"})
	if _, err := p.auth.Revoke(context.Background(), revoked.cert.SerialNumber.String(), ca.ReasonKeyCompromise, ""); err != nil {
		t.Fatal(err)
	}
	serverOnly := p.issue(t, "server-only", ca.IssueRequest{Profile: "server", Hosts: []string{"client.example.com"}})
	for _, tc := range []struct {
		name      string
		cert      *leaf
		serverLog string // what the server logs about the refusal
	}{
		{"foreign CA", foreign, "unknown authority"},
		{"expired", expired, "expired"},
		{"revoked", revoked, "revoked"},
		{"serverAuth only", serverOnly, "key usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.errLog.String())
			res := curl(t, curlBin, append(withCA, "--cert", tc.cert.chain, "--key", tc.cert.keyf,
				"--write-out", "\n%{http_code}", s.url)...)
			if res.code == 0 || strings.Contains(res.out, "hello") {
				t.Fatalf("refused certificate got through: exit %d, output %q", res.code, res.out)
			}
			logged := waitForLog(t, s.errLog, before)
			if !strings.Contains(logged, tc.serverLog) {
				t.Fatalf("server log %q does not mention %q", logged, tc.serverLog)
			}
			if !strings.Contains(logged, "TLS handshake error") {
				t.Fatalf("refusal was not a handshake error: %q", logged)
			}
		})
	}
	// The good certificate still works after all that.
	again := curl(t, curlBin, append(withCA, "--cert", runner.chain, "--key", runner.keyf, s.url)...)
	if again.code != 0 || !strings.Contains(again.out, "hello leash://runner/web-1") {
		t.Fatalf("mTLS after refusals: exit %d, output %q", again.code, again.out)
	}
}

// waitForLog waits (with a deadline) for the server to log something after
// offset: the handshake error is logged after curl has already given up.
func waitForLog(t *testing.T, b *syncBuffer, offset int) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if s := b.String(); len(s) > offset {
			return s[offset:]
		}
		if time.Now().After(deadline) {
			t.Fatal("server logged no handshake error within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
