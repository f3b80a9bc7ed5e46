package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/leashpki/leash/protocol"
	leashtls "github.com/leashpki/leash/tls"
)

// maxAnswerBytes bounds what the runner reads from one gateway answer.
const maxAnswerBytes = 1 << 20

// statusError is a 4xx or 5xx answer from the gateway.
type statusError struct {
	Status int
	Body   protocol.Error
}

func (e *statusError) Error() string {
	if e.Body.Code != "" {
		return fmt.Sprintf("gateway answered %d %s: %s", e.Status, e.Body.Code, e.Body.Message)
	}
	return fmt.Sprintf("gateway answered %d", e.Status)
}

// statusOf returns the HTTP status of a gateway refusal, or 0.
func statusOf(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// codeOf returns the protocol error code of a gateway refusal, or "".
func codeOf(err error) string {
	var se *statusError
	if errors.As(err, &se) {
		return se.Body.Code
	}
	return ""
}

// fatalRefusal reports whether err means the gateway will never accept
// this identity again: a revoked certificate refused in the handshake, or
// a 401/403 on a runner route.
func fatalRefusal(err error) bool {
	if leashtls.FailureReason(err) == leashtls.ReasonRevoked {
		return true
	}
	s := statusOf(err)
	return s == http.StatusUnauthorized || s == http.StatusForbidden
}

// call sends one API request. in is JSON-encoded unless it is []byte
// (sent as is with contentType). out, when not nil, receives a 200/201
// JSON answer. It returns the status code; any status >= 400 is a
// *statusError.
func (a *Agent) call(ctx context.Context, method, path string, in any, contentType string, out any) (int, error) {
	var body io.Reader
	switch v := in.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(v)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return 0, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
		contentType = protocol.ContentTypeJSON
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", protocol.ContentTypeJSON)
	// Read only outside mTLS mode; there the certificate names the runner.
	req.Header.Set(protocol.HeaderRunnerID, a.cfg.Name)
	req.Header.Set("User-Agent", "leash-runner/"+a.version)
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		se := &statusError{Status: resp.StatusCode}
		_ = json.Unmarshal(data, &se.Body)
		return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, se)
	}
	if out != nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated) {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}
