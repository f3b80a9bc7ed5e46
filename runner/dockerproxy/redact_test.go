package dockerproxy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

const inspectAnswer = `{
  "Id": "c1",
  "Name": "/app",
  "SizeRw": 12345678901234567890,
  "Args": ["--port", "80"],
  "Config": {
    "Env": ["SECRET=hunter2", "PATH=/usr/bin", "EMPTY=", "NOVALUE", 7],
    "Labels": {"app": "web"},
    "Html": "<b>&</b>"
  },
  "HostConfig": {
    "LogConfig": {"Type": "splunk", "Config": {"splunk-token": "hunter2", "splunk-url": "https://x"}}
  },
  "ExecConfig": {"Env": "SECRET=hunter2"},
  "Nested": [{"Env": ["SECRET=hunter2"]}]
}`

func TestRedactContainerInspect(t *testing.T) {
	engine := startFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, inspectAnswer)
	})
	addr := serveProxy(t, newProxy(t, Config{Socket: engine.socket}))
	resp, body := do(t, addr, req("GET", "/v1.41/containers/c1/json"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s: %s", resp.Status, body)
	}
	if strings.Contains(body, "hunter2") {
		t.Errorf("the secret passed the proxy: %s", body)
	}
	var doc struct {
		SizeRw json.Number
		Args   []string
		Config struct {
			Env    []any
			Labels map[string]string
			HTML   string `json:"Html"`
		}
		HostConfig struct {
			LogConfig struct{ Config map[string]string }
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("the redacted answer does not decode: %v\n%s", err, body)
	}
	wantEnv := []any{"SECRET=<redacted>", "PATH=<redacted>", "EMPTY=<redacted>", "NOVALUE", "<redacted>"}
	if got, _ := json.Marshal(doc.Config.Env); !bytes.Equal(got, mustJSON(t, wantEnv)) {
		t.Errorf("Config.Env = %s, want %s", got, mustJSON(t, wantEnv))
	}
	lc := doc.HostConfig.LogConfig.Config
	if lc["splunk-token"] != Redacted || lc["splunk-url"] != Redacted || len(lc) != 2 {
		t.Errorf("LogConfig.Config = %v, want its keys with values redacted", lc)
	}
	// Everything else passes unchanged, large numbers digit for digit.
	if doc.SizeRw != "12345678901234567890" || strings.Join(doc.Args, " ") != "--port 80" ||
		doc.Config.Labels["app"] != "web" || doc.Config.HTML != "<b>&</b>" {
		t.Errorf("unredacted fields changed: %+v", doc)
	}
	if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length %s for a %d-byte body", cl, len(body))
	}
}

func TestRedactVolumes(t *testing.T) {
	engine := startFakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		vol := `{"Name":"share","Driver":"local","Options":{"type":"cifs","o":"username=u,password=hunter2"}}`
		if r.URL.Path == "/volumes" {
			_, _ = io.WriteString(w, `{"Volumes":[`+vol+`,{"Name":"plain","Options":null}],"Warnings":null}`)
			return
		}
		_, _ = io.WriteString(w, vol)
	})
	addr := serveProxy(t, newProxy(t, Config{Socket: engine.socket}))
	for _, target := range []string{"/volumes", "/volumes/share"} {
		resp, body := do(t, addr, req("GET", target))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %s", target, resp.Status)
		}
		if strings.Contains(body, "hunter2") || !strings.Contains(body, `"o":"<redacted>"`) || !strings.Contains(body, `"Name":"share"`) {
			t.Errorf("%s: %s", target, body)
		}
	}
}

// An answer the proxy cannot redact is never passed on.
func TestRedactFailsClosed(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = io.WriteString(zw, inspectAnswer)
	_ = zw.Close()
	tests := []struct {
		name    string
		respond func(w http.ResponseWriter)
		status  int
		msg     string // in the proxy's message
	}{
		{"not JSON", func(w http.ResponseWriter) { _, _ = io.WriteString(w, `SECRET=hunter2`) }, http.StatusBadGateway, "decode"},
		{"truncated JSON", func(w http.ResponseWriter) { _, _ = io.WriteString(w, inspectAnswer[:60]) }, http.StatusBadGateway, "decode"},
		{"two documents", func(w http.ResponseWriter) { _, _ = io.WriteString(w, `{} {"Env":["SECRET=hunter2"]}`) }, http.StatusBadGateway, "data after"},
		{"compressed", func(w http.ResponseWriter) {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(gz.Bytes())
		}, http.StatusBadGateway, "Content-Encoding"},
		{"switching protocols", func(w http.ResponseWriter) {
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "tcp")
			w.WriteHeader(http.StatusSwitchingProtocols)
		}, http.StatusBadGateway, "switched protocols"},
		{"error answer passes as is", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"message":"No such container: c1"}`)
		}, http.StatusNotFound, "No such container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			engine := startFakeEngine(t, func(w http.ResponseWriter, r *http.Request) { tt.respond(w) })
			addr := serveProxy(t, newProxy(t, Config{Socket: engine.socket}))
			resp, body := do(t, addr, req("GET", "/containers/c1/json"))
			if resp.StatusCode != tt.status {
				t.Errorf("status %s, want %d: %s", resp.Status, tt.status, body)
			}
			if !strings.Contains(body, tt.msg) {
				t.Errorf("body %q does not say %q", body, tt.msg)
			}
			if strings.Contains(body, "hunter2") {
				t.Errorf("the secret passed the proxy: %s", body)
			}
		})
	}
}

func TestRewriteJSONLimit(t *testing.T) {
	resp := &http.Response{Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{"Env":["A=b"]}`))}
	if err := rewriteJSON(resp, redactContainer, 8); err == nil {
		t.Errorf("a 15-byte answer passed an 8-byte limit")
	}
}

func TestRedactHeadPassesThrough(t *testing.T) {
	engine := startFakeEngine(t, nil)
	addr := serveProxy(t, newProxy(t, Config{Socket: engine.socket}))
	resp, body := do(t, addr, req("HEAD", "/containers/c1/json"))
	if resp.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD: %s %q", resp.Status, body)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
