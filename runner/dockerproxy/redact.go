package dockerproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Redacted replaces every value the proxy hides.
const Redacted = "<redacted>"

// maxRewrite bounds an answer the proxy decodes to redact.
const maxRewrite = 16 << 20

// rewriteJSON replaces resp's body with fn applied to its JSON document.
// It fails rather than pass on an answer it could not rewrite.
func rewriteJSON(resp *http.Response, fn func(any), limit int64) error {
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return fmt.Errorf("cannot redact an answer with Content-Encoding %q", ce)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read the answer to redact: %w", err)
	}
	if int64(len(b)) > limit {
		return fmt.Errorf("the answer to redact is over %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // numbers pass through digit for digit
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("decode the answer to redact: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("decode the answer to redact: data after the JSON document")
	}
	fn(doc)
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encode the redacted answer: %w", err)
	}
	resp.Body = io.NopCloser(&out)
	resp.ContentLength = int64(out.Len())
	resp.Header.Set("Content-Length", strconv.Itoa(out.Len()))
	resp.Header.Del("Content-Encoding")
	resp.TransferEncoding = nil
	return nil
}

// redactContainer hides a container inspect answer's environment values,
// wherever an Env appears, and its logging driver options.
func redactContainer(doc any) {
	redactEnv(doc)
	if hc, ok := object(doc)["HostConfig"]; ok {
		if lc, ok := object(hc)["LogConfig"]; ok {
			redactValues(object(lc), "Config")
		}
	}
}

// redactVolumeList hides the mount options of every volume in a list.
func redactVolumeList(doc any) {
	vols, _ := object(doc)["Volumes"].([]any)
	for _, v := range vols {
		redactVolume(v)
	}
}

// redactVolume hides a volume's mount options, which can hold passwords.
func redactVolume(doc any) { redactValues(object(doc), "Options") }

// redactEnv walks v and rewrites every member named Env: KEY=value
// becomes KEY=<redacted>; an entry that is not a string, or an Env that
// is not a list, is replaced whole.
func redactEnv(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if k != "Env" {
				redactEnv(child)
				continue
			}
			switch env := child.(type) {
			case nil:
			case []any:
				for i, e := range env {
					s, ok := e.(string)
					if !ok {
						env[i] = Redacted
						continue
					}
					if name, _, ok := strings.Cut(s, "="); ok {
						env[i] = name + "=" + Redacted
					}
				}
			default:
				v[k] = Redacted
			}
		}
	case []any:
		for _, child := range v {
			redactEnv(child)
		}
	}
}

// redactValues replaces the values of the object m[key] with Redacted,
// keeping its keys; anything else there but null is replaced whole.
func redactValues(m map[string]any, key string) {
	switch opts := m[key].(type) {
	case nil:
	case map[string]any:
		for k := range opts {
			opts[k] = Redacted
		}
	default:
		m[key] = Redacted
	}
}

// object returns v as a JSON object, or nil.
func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
