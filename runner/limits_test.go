package runner

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/leashpki/leash/protocol"
)

// TestEncodeEventFitsTheGateway: whatever a job prints, the encoded line
// stays within the gateway's limits, so a batch is never refused for it.
func TestEncodeEventFitsTheGateway(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"html characters", strings.Repeat("<", 9000)},
		{"multi-byte characters", strings.Repeat("€", 3000)},
		{"control characters", strings.Repeat("\x01", protocol.MaxEventDataBytes)},
		{"invalid utf-8", strings.Repeat("\xff", 5000)},
		{"plain", strings.Repeat("a", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newEventQueue()
			q.add(protocol.Event{Kind: protocol.EventJobOutput, Data: tt.data, Message: tt.data})
			e := q.take(1)[0]
			line := encodeEvent(e)
			if len(line) > protocol.MaxEventLineBytes {
				t.Fatalf("line of %d bytes; the gateway takes %d", len(line), protocol.MaxEventLineBytes)
			}
			var back protocol.Event
			if err := json.Unmarshal(line, &back); err != nil {
				t.Fatal(err)
			}
			if len(back.Data) > protocol.MaxEventDataBytes || !utf8.ValidString(back.Data) || back.Data == "" {
				t.Fatalf("decoded data: %d bytes, valid %v", len(back.Data), utf8.ValidString(back.Data))
			}
			if tt.name == "plain" && back.Data != tt.data {
				t.Fatal("a short line was changed")
			}
		})
	}
}

func TestClipCutsBetweenCharacters(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 4, 5, 7} {
		got := clip("€€€", n)
		if len(got) > n || !utf8.ValidString(got) || len(got) != n/3*3 {
			t.Errorf("clip(€€€, %d) = %q", n, got)
		}
	}
}

func TestValidateRefusesUnsafeGatewayAndLabels(t *testing.T) {
	base := Config{Name: "web-1", Gateway: "https://gw:8443", StateDir: "/tmp/x"}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"plain http to another host", func(c *Config) { c.Gateway = "http://gw.example.com:8080" }, "plain http only to a loopback"},
		{"empty label key", func(c *Config) { c.Labels = map[string]string{"": "x"} }, "must not be empty"},
		{"label too long", func(c *Config) { c.Labels = map[string]string{"k": strings.Repeat("v", 300)} }, "at most"},
		{"tls ca alone", func(c *Config) { c.TLSCA = "ca.pem" }, "need -tls-ca, -tls-cert and -tls-key together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v; want %q", err, tt.want)
			}
		})
	}
	ok := base
	ok.Gateway = "http://127.0.0.1:8080"
	if err := ok.Validate(); err != nil {
		t.Fatalf("loopback plain gateway refused: %v", err)
	}
}

func TestBackoffLargeMinNeverWrapsAround(t *testing.T) {
	b := backoff{Min: 20 * time.Second, Max: time.Minute, rand: func() float64 { return 0.999 }}
	for i := range 100 {
		d := b.next()
		if d <= 0 || d > time.Minute || i >= 2 && d < 30*time.Second {
			t.Fatalf("attempt %d: %s; want (0, 1m], and at least 30s once capped", i, d)
		}
	}
}

func TestRenewAtLongLifetime(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.AddDate(50, 0, 0)
	at := renewAt(nb, na, 0, 0.5)
	if !at.After(nb.AddDate(30, 0, 0)) || !at.Before(na) {
		t.Fatalf("renewAt for a 50-year certificate = %s", at)
	}
}
