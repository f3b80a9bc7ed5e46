package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// apiClient calls the gateway API with the operator identity from the
// client config.
type apiClient struct {
	base *url.URL
	http *http.Client
}

// maxResponseBytes bounds what the CLI reads from the gateway.
const maxResponseBytes = 8 << 20

// newAPIClient builds a client for cfg. Over https the gateway is verified
// against cfg.CA only (never the system roots) and the operator
// certificate is presented.
func newAPIClient(cfg clientConfig) (*apiClient, error) {
	u, err := parseGatewayURL(cfg.Gateway)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
		TLSHandshakeTimeout: 10 * time.Second, IdleConnTimeout: 30 * time.Second}
	if u.Scheme == "https" {
		if cfg.CA == "" {
			return nil, errors.New("config has no ca: run 'leash login' again with --ca or --token")
		}
		roots, err := loadRoots(cfg.CA)
		if err != nil {
			return nil, err
		}
		opts := leashtls.ClientOptions{Roots: roots}
		if cfg.Cert != "" || cfg.Key != "" {
			pair, err := leashtls.LoadKeyPair(cfg.Cert, cfg.Key)
			if err != nil {
				return nil, fmt.Errorf("operator certificate: %w", err)
			}
			src, err := leashtls.NewSource(pair)
			if err != nil {
				return nil, fmt.Errorf("operator certificate: %w", err)
			}
			opts.Certificate = src.GetClientCertificate
		}
		tc, err := leashtls.ClientConfig(opts)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	return &apiClient{base: u, http: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}, nil
}

// parseGatewayURL accepts http(s)://host[:port] with no path, query or
// credentials.
func parseGatewayURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("no gateway URL: run 'leash login GATEWAY_URL' first")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("gateway URL %q: %w", s, err)
	}
	var problems []string
	if u.Scheme != "https" && u.Scheme != "http" {
		problems = append(problems, "scheme must be https (or http for a loopback gateway in plain mode)")
	}
	if u.Host == "" {
		problems = append(problems, "host is missing")
	}
	if u.User != nil {
		problems = append(problems, "credentials in the URL are not used; remove them")
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		problems = append(problems, "path, query and fragment are not allowed")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("gateway URL %q: %s", s, strings.Join(problems, "; "))
	}
	u.Path = ""
	return u, nil
}

// call sends in (nil for no body) as JSON and decodes a 2xx answer into
// out (nil to discard). A non-2xx answer becomes an error carrying the
// gateway's protocol.Error.
func (a *apiClient) call(ctx context.Context, method, path string, query url.Values, in, out any) (int, error) {
	u := *a.base
	u.Path = path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", protocol.ContentTypeJSON)
	}
	req.Header.Set("Accept", protocol.ContentTypeJSON)
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, u.Redacted(), explainTransportError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var pe protocol.Error
		if json.Unmarshal(data, &pe) == nil && pe.Code != "" {
			return resp.StatusCode, fmt.Errorf("gateway refused %s %s (%d): %w", method, path, resp.StatusCode, &pe)
		}
		return resp.StatusCode, fmt.Errorf("gateway answered %s %s with %s", method, path, resp.Status)
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: malformed answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// explainTransportError adds the likely fix to TLS failures.
func explainTransportError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "certificate required"), strings.Contains(msg, "bad certificate"):
		return fmt.Errorf("%w (the gateway wants an operator certificate: run 'leash login' with --cert/--key or --token)", err)
	case strings.Contains(msg, "unknown authority"), strings.Contains(msg, "failed to verify certificate"):
		return fmt.Errorf("%w (the gateway's certificate does not chain to the configured ca)", err)
	case strings.Contains(msg, "revoked"), strings.Contains(msg, "certificate revoked"):
		return fmt.Errorf("%w (this operator certificate was revoked: log in again with a new one)", err)
	}
	return err
}
