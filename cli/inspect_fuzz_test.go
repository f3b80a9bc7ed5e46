package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// FuzzParseObjects: cert inspect reads arbitrary files. It must never
// panic, never print key material, and always return either objects or an
// error.
func FuzzParseObjects(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "seed"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(certDER)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	crlDER, _ := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
		ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, cert, key)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	p := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	for _, seed := range [][]byte{
		certDER, csrDER, crlDER,
		p("CERTIFICATE", certDER), p("CERTIFICATE REQUEST", csrDER), p("X509 CRL", crlDER),
		append(p("CERTIFICATE", certDER), p("CERTIFICATE", certDER)...),
		p("PRIVATE KEY", keyDER), p("CERTIFICATE", []byte("junk")), nil, []byte("hello"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := parseObjects(data, time.Now())
		if err == nil && len(objs) == 0 && len(data) > 0 && !strings.Contains(string(data), "-----BEGIN") {
			t.Fatal("non-PEM input accepted without any object")
		}
		if err != nil && objs != nil {
			t.Fatal("objects returned with an error")
		}
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if strings.Contains(b.Type, "PRIVATE KEY") && err == nil {
				t.Fatal("a private key block was accepted")
			}
		}
	})
}
