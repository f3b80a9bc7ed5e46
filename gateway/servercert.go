package gateway

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/leashpki/leash/ca"
)

type tlsCertificate = tls.Certificate

// issueServerPair issues a server-profile certificate for hosts from the
// embedded CA, with a key generated here.
func issueServerPair(ctx context.Context, a *ca.Authority, hosts []string) (*tls.Certificate, error) {
	key, err := ca.KeyECP256.Generate()
	if err != nil {
		return nil, err
	}
	csr, err := ca.NewCSR(key)
	if err != nil {
		return nil, err
	}
	iss, err := a.Issue(ctx, ca.IssueRequest{Profile: ca.ProfileServer, Hosts: hosts, CSR: csr})
	if err != nil {
		return nil, fmt.Errorf("issue the gateway's server certificate: %w", err)
	}
	pair := &tls.Certificate{PrivateKey: key, Leaf: iss.Leaf}
	for _, c := range iss.Chain {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	return pair, nil
}
