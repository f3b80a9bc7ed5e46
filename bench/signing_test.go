package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store/sqlitestore"
)

// BenchmarkSigning compares certificates signed per second through the
// embedded authority (token mint + verify + atomic spend + policy + step
// signing + inventory write, on SQLite) with two baselines measured in the
// same run: a raw ECDSA P-256 signature over a SHA-256 digest, and a bare
// x509.CreateCertificate with the same key. Reported metrics:
//
//	certs/s          authority throughput
//	x-raw-ecdsa      authority time per cert / raw ECDSA sign time
//	x-raw-x509       authority time per cert / bare x509 signing time
func BenchmarkSigning(b *testing.B) {
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), "ca")
	pw := []byte("benchmark password")
	if _, err := ca.Init(dir, ca.InitOptions{Name: "Bench", Password: pw}); err != nil {
		b.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "leash.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	auth, err := ca.Open(ca.Config{Dir: dir, Password: pw}, st)
	if err != nil {
		b.Fatal(err)
	}
	defer auth.Close()

	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	csr, err := ca.NewCSR(leafKey)
	if err != nil {
		b.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	parent := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "baseline"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}

	const baselineRounds = 2000
	rawECDSA := perOp(baselineRounds, func(i int) {
		digest := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		if _, err := ecdsa.SignASN1(rand.Reader, caKey, digest[:]); err != nil {
			b.Fatal(err)
		}
	})
	rawX509 := perOp(baselineRounds, func(i int) {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i) + 2), Subject: pkix.Name{CommonName: "leaf"},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if _, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &leafKey.PublicKey, caKey); err != nil {
			b.Fatal(err)
		}
	})

	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := auth.Issue(ctx, ca.IssueRequest{Profile: ca.ProfileRunner, Name: "bench", CSR: csr}); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	perCert := elapsed / time.Duration(b.N)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "certs/s")
	b.ReportMetric(float64(perCert)/float64(rawECDSA), "x-raw-ecdsa")
	b.ReportMetric(float64(perCert)/float64(rawX509), "x-raw-x509")
	b.Logf("authority %s/cert, raw ECDSA %s/sig, bare x509 %s/cert", perCert, rawECDSA, rawX509)
}

func perOp(n int, f func(int)) time.Duration {
	start := time.Now()
	for i := 0; i < n; i++ {
		f(i)
	}
	return time.Since(start) / time.Duration(n)
}
