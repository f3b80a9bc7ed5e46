package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/gateway/store/pgstore"
	"github.com/leashpki/leash/internal/enroll"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/internal/testpg"
	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// backend is a store backend the control-plane benchmarks run on.
type backend struct {
	name string
	// opts returns harness options whose OpenStore opens this backend;
	// postgres skips b outside CI when no PostgreSQL is available.
	opts func(b *testing.B) testharness.Options
}

func backends() []backend {
	return []backend{
		{"sqlite", func(*testing.B) testharness.Options { return testharness.Options{} }},
		{"postgres", func(b *testing.B) testharness.Options {
			dbURL := testpg.Start(b)
			return testharness.Options{OpenStore: func(t testing.TB) store.Store {
				t.Helper()
				st, err := pgstore.Open(context.Background(), dbURL)
				if err != nil {
					t.Fatalf("open postgres store: %v", err)
				}
				t.Cleanup(func() { _ = st.Close() })
				return st
			}}
		}},
	}
}

// BenchmarkEnroll measures token enrollments per second end to end through
// the gateway's enrollment listener, as a runner performs them: generate a
// P-256 key, build a CSR, POST it with a one-time token over a fresh TLS
// connection (enroll.Client), and verify the chain that comes back. The
// gateway verifies and spends the token, checks the CSR, signs through
// step and writes the inventory and audit rows. Tokens are minted before
// the timer starts. Sub-benchmarks:
//
//	raw-sign   baseline: x509.CreateCertificate of an equivalent runner
//	           leaf with an in-memory P-256 key (no token, store or network)
//	sqlite     end to end on SQLite
//	postgres   end to end on PostgreSQL (testpg)
//
// Reported metrics:
//
//	enrolls/s    one client enrolling back to back
//	certs/s      raw-sign throughput
//	x-raw-sign   time per enrollment / raw-sign time per certificate, the
//	             baseline measured again inside the same sub-benchmark
func BenchmarkEnroll(b *testing.B) {
	b.Run("raw-sign", func(b *testing.B) {
		s, err := newRawSigner()
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := s.sign("raw-" + fmt.Sprint(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
	})
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) { benchEnroll(b, be.opts(b)) })
	}
}

func benchEnroll(b *testing.B, opts testharness.Options) {
	ctx := b.Context()
	h := testharness.New(b, opts)
	gw := h.StartGateway(b)
	cl := enroll.Client{URL: gw.EnrollURL}
	root, err := cl.FetchRoot(ctx, h.CA.RootFingerprint())
	if err != nil {
		b.Fatal(err)
	}
	raw, err := newRawSigner()
	if err != nil {
		b.Fatal(err)
	}
	rawSign := bestPerOp(5, 200, func(i int) {
		if err := raw.sign("raw-" + fmt.Sprint(i)); err != nil {
			b.Fatal(err)
		}
	})
	names := make([]string, b.N)
	tokens := make([]string, b.N)
	for i := range tokens {
		names[i] = fmt.Sprintf("enroll-%d", i)
		tok, err := h.CA.CreateToken(ctx, ca.TokenRequest{Profile: ca.ProfileRunner, Subject: names[i]})
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = tok.Value
	}

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: names[i]}}, key)
		if err != nil {
			b.Fatal(err)
		}
		chain, err := cl.Enroll(ctx, root, tokens[i], csr)
		if err != nil {
			b.Fatalf("enrollment %d: %v", i, err)
		}
		if chain[0].Subject.CommonName != names[i] {
			b.Fatalf("enrollment %d: certificate for %q", i, chain[0].Subject.CommonName)
		}
	}
	b.StopTimer()
	perEnroll := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enrolls/s")
	b.ReportMetric(float64(perEnroll)/float64(rawSign), "x-raw-sign")
	b.Logf("%d enrollments: %s each; raw sign %s/cert", b.N, perEnroll, rawSign)
}

// bestPerOp runs f in batches of n calls and returns the fastest batch's
// time per call. A baseline measured next to a running gateway would
// otherwise be charged for the gateway's background loops and garbage.
func bestPerOp(batches, n int, f func(int)) time.Duration {
	best := time.Duration(math.MaxInt64)
	for k := range batches {
		best = min(best, perOp(n, func(i int) { f(k*n + i) }))
	}
	return best
}

// rawSigner signs runner-profile leaves the way the CA's template shapes
// them (CN and leash://runner/<name> URI SAN, digitalSignature, clientAuth,
// 24h, 128-bit random serial, AKI from an intermediate), with nothing else.
type rawSigner struct {
	parent  *x509.Certificate
	key     *ecdsa.PrivateKey
	leafPub *ecdsa.PublicKey
}

func newRawSigner() (*rawSigner, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "baseline intermediate"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId: []byte{1, 2, 3, 4}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	parent, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	leaf, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &rawSigner{parent: parent, key: key, leafPub: &leaf.PublicKey}, nil
}

var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

func (s *rawSigner) sign(name string) error {
	serial, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		return err
	}
	id, err := leashtls.IdentityURI(leashtls.RoleRunner, name)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name}, URIs: []*url.URL{id},
		NotBefore: now, NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true}
	_, err = x509.CreateCertificate(rand.Reader, tmpl, s.parent, s.leafPub, s.key)
	return err
}

// Heartbeat fleet shape: simulated runners, and the goroutines that send
// for them.
const (
	heartbeatRunners = 1000
	heartbeatWorkers = 64
)

// BenchmarkHeartbeats measures heartbeats per second into one gateway from
// 1,000 simulated runners. Each runner has its own runner certificate,
// registers once, and keeps its mTLS connection alive; a pool of 64
// goroutines sends b.N heartbeats in all, each goroutine for its own
// fifteen or sixteen runners in turn, so no connection is shared. Setup
// (1,000 certificates and registrations) happens once per backend, outside
// the timer. Sub-benchmarks, per backend (sqlite, postgres):
//
//	mtls             POST /v1/heartbeat over HTTP/1.1 + mTLS, expecting 204
//	baseline-store   the gateway store's Heartbeat method called directly
//	                 (no HTTP, no TLS) for the same runners, same pool
//
// Reported metrics:
//
//	heartbeats/s   throughput
//	p50-ms p99-ms  latency of one heartbeat
//	x-store        (mtls only) time per heartbeat / store time per
//	               heartbeat, the baseline measured again in the same
//	               sub-benchmark: the HTTP+mTLS overhead as a ratio
//	reconnects     (mtls only) TLS handshakes during the timed loop; 0 when
//	               keep-alive holds
//
// The offline detector is pushed out to an hour so that runners waiting
// for their turn are not marked offline (which would add audit writes to
// the measured path).
func BenchmarkHeartbeats(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			opts := be.opts(b)
			opts.Gateway = func(c *gateway.Config) {
				c.HeartbeatInterval = gateway.DefaultHeartbeatInterval
				c.OfflineAfter = time.Hour
			}
			f := newFleet(b, opts, heartbeatRunners)
			b.Run("mtls", func(b *testing.B) {
				base := f.spread(2000, f.storeHeartbeat)
				if base.err != nil {
					b.Fatalf("store baseline: %d of %d failed, first: %v", base.failures, base.n, base.err)
				}
				before := f.handshakes.Load()
				b.ResetTimer()
				res := f.spread(b.N, f.httpHeartbeat)
				b.StopTimer()
				if res.err != nil {
					b.Errorf("%d of %d heartbeats failed, first: %v", res.failures, res.n, res.err)
				}
				res.report(b, "heartbeats/s")
				b.ReportMetric(float64(res.perOp())/float64(base.perOp()), "x-store")
				b.ReportMetric(float64(f.handshakes.Load()-before), "reconnects")
				b.Logf("%d heartbeats: %s each over mTLS (p99 %s); store alone %s each (p99 %s)",
					res.n, res.perOp(), res.percentile(0.99), base.perOp(), base.percentile(0.99))
			})
			b.Run("baseline-store", func(b *testing.B) {
				b.ResetTimer()
				res := f.spread(b.N, f.storeHeartbeat)
				b.StopTimer()
				if res.err != nil {
					b.Errorf("%d of %d store heartbeats failed, first: %v", res.failures, res.n, res.err)
				}
				res.report(b, "heartbeats/s")
			})
		})
	}
}

// fleet is a gateway with simulated runners that have registered over
// mTLS and keep their connections alive.
type fleet struct {
	gw         *testharness.Gateway
	runners    []fleetRunner
	hbBody     []byte
	handshakes atomic.Int64 // client-side TLS handshakes since setup
}

type fleetRunner struct {
	name     string
	client   *testharness.Client
	serial   string
	notAfter time.Time
}

func newFleet(b *testing.B, opts testharness.Options, n int) *fleet {
	b.Helper()
	h := testharness.New(b, opts)
	f := &fleet{gw: h.StartGateway(b)}
	start := time.Now()
	// One at a time: on two cores, issuing and registering in parallel
	// saved only 5-25% of the ~8s.
	for i := range n {
		name := fmt.Sprintf("hb-%04d", i)
		c := h.Client(b, ca.ProfileRunner, name)
		reg := protocol.RegisterRequest{Hostname: name + ".bench", OS: "linux", Arch: "amd64", Version: "bench"}
		if status := c.Do(b, http.MethodPost, f.gw.APIURL+"/v1/register", reg, nil); status != http.StatusOK {
			b.Fatalf("register %s: status %d", name, status)
		}
		// Registration opened the connection the heartbeats reuse; count
		// any handshake after it.
		c.TLS.VerifyConnection = func(tls.ConnectionState) error {
			f.handshakes.Add(1)
			return nil
		}
		f.runners = append(f.runners, fleetRunner{name: name, client: c, serial: c.Cert.SerialNumber.String(),
			notAfter: c.Cert.NotAfter.UTC()})
	}
	hb := protocol.Heartbeat{Load1: 0.25, MemUsedBytes: 1 << 30, MemTotalBytes: 4 << 30}
	var err error
	if f.hbBody, err = json.Marshal(hb); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d runners issued and registered in %s", n, time.Since(start).Round(time.Millisecond))
	return f
}

func (f *fleet) httpHeartbeat(i int) error {
	r := f.runners[i]
	status, answer, err := r.client.Raw(http.MethodPost, f.gw.APIURL+"/v1/heartbeat", protocol.ContentTypeJSON, f.hbBody)
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	if status != http.StatusNoContent {
		return fmt.Errorf("%s: status %d: %s", r.name, status, answer)
	}
	return nil
}

// storeHeartbeat writes what the gateway's heartbeat handler writes.
func (f *fleet) storeHeartbeat(i int) error {
	r := f.runners[i]
	_, err := f.gw.Store.Heartbeat(context.Background(), store.HeartbeatRecord{RunnerID: r.name, At: time.Now().UTC(),
		Load1: 0.25, MemUsed: 1 << 30, MemTotal: 4 << 30, CertSerial: r.serial, CertNotAfter: r.notAfter})
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	return nil
}

// spread makes n calls of do from heartbeatWorkers goroutines. Worker w
// calls do only for runners w, w+workers, w+2·workers, … in turn, so a
// runner's connection is never used by two calls at once.
func (f *fleet) spread(n int, do func(runner int) error) poolResult {
	workers := min(heartbeatWorkers, len(f.runners))
	var next atomic.Int64
	return runPool(n, workers, func(w int, t *tally) {
		r := w
		for next.Add(1) <= int64(n) {
			t0 := time.Now()
			err := do(r)
			t.add(time.Since(t0), err)
			if r += workers; r >= len(f.runners) {
				r = w
			}
		}
	})
}

// poolResult is what spread measured.
type poolResult struct {
	n        int
	elapsed  time.Duration
	lat      []time.Duration // sorted
	failures int
	err      error // the first failure
}

// perOp is wall time per call with the pool's concurrency: 1/throughput.
func (r poolResult) perOp() time.Duration { return r.elapsed / time.Duration(max(r.n, 1)) }

func (r poolResult) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(float64(len(r.lat)-1)*p)]
}

func (r poolResult) report(b *testing.B, unit string) {
	b.ReportMetric(float64(r.n)/r.elapsed.Seconds(), unit)
	b.ReportMetric(float64(r.percentile(0.5))/float64(time.Millisecond), "p50-ms")
	b.ReportMetric(float64(r.percentile(0.99))/float64(time.Millisecond), "p99-ms")
}
