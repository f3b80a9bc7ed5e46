package ca_test

import (
	"context"
	"encoding/pem"
	"strings"
	"sync"
	"testing"

	"github.com/leashpki/leash/ca"
)

// FuzzParseCSR: arbitrary bytes never panic, and whatever ParseCSR accepts
// has a valid self-signature.
func FuzzParseCSR(f *testing.F) {
	key := newKey(f)
	csr, err := ca.NewCSR(key)
	if err != nil {
		f.Fatal(err)
	}
	pemCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})
	for _, seed := range [][]byte{
		pemCSR, csr.Raw, nil, []byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"),
		[]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
		append(pemCSR[:len(pemCSR)/2:len(pemCSR)/2], pemCSR[len(pemCSR)/2+3:]...),
		{0x30, 0x82, 0xff, 0xff},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ca.ParseCSR(data)
		if err != nil {
			if got != nil {
				t.Fatal("error with a result")
			}
			return
		}
		if err := got.CheckSignature(); err != nil {
			t.Fatalf("ParseCSR accepted a request whose signature fails: %v", err)
		}
	})
}

// FuzzParseCerts: arbitrary PEM never panics; accepted input yields only
// parsed certificates.
func FuzzParseCerts(f *testing.F) {
	fx := newFixture(f, ca.KeyECP256)
	chain := ca.EncodeCerts(fx.auth.Root(), fx.auth.Intermediate())
	for _, seed := range [][]byte{
		chain, chain[:len(chain)/2], []byte("garbage"), nil,
		[]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
		[]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ca.ParseCerts("fuzz", data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificates")
		}
		for _, c := range certs {
			if c == nil || len(c.Raw) == 0 {
				t.Fatal("nil certificate returned")
			}
		}
	})
}

// FuzzEnrollToken: no input other than a genuine, unspent token enrolls.
// Mutations of a genuine token (the seed) must all be refused.
func FuzzEnrollToken(f *testing.F) {
	fx := newFixture(f, ca.KeyECP256)
	ctx := context.Background()
	genuine := fx.enrollToken(f, ca.ProfileRunner, "fuzz-target")
	parts := strings.Split(genuine.Value, ".")
	for _, seed := range []string{
		genuine.Value,
		parts[0] + "." + parts[1] + ".",
		`eyJhbGciOiJub25lIn0.` + parts[1] + ".",
		`eyJhbGciOiJIUzI1NiJ9.` + parts[1] + "." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + "x",
		"", "...", "a.b.c", strings.Repeat("A", 4096),
	} {
		f.Add(seed)
	}
	csr, err := ca.NewCSR(newKey(f))
	if err != nil {
		f.Fatal(err)
	}
	var mu sync.Mutex
	spent := false
	f.Fuzz(func(t *testing.T, token string) {
		iss, err := fx.auth.Enroll(ctx, token, csr)
		if err == nil {
			mu.Lock()
			defer mu.Unlock()
			if token != genuine.Value || spent {
				t.Fatalf("token %q enrolled", token)
			}
			spent = true
			if iss.Leaf.Subject.CommonName != "fuzz-target" {
				t.Fatalf("enrolled as %q", iss.Leaf.Subject.CommonName)
			}
		}
	})
}
