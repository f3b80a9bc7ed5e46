package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leashpki/leash/ca"
	"github.com/leashpki/leash/gateway/store"
	"github.com/leashpki/leash/internal/testharness"
	"github.com/leashpki/leash/protocol"
)

// portOf returns the port of an echo server on 127.0.0.1.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// TestOperatorSessions: connect, status, a second operator joining, byte
// streams with the token, refusals (port not allowed, token of another
// session, no token), the operator override narrowing the ports, idle
// expiry driven by traffic, and disconnect tearing live streams down.
func TestOperatorSessions(t *testing.T) {
	echoPort := portOf(t, echoServer(t, "echo"))
	otherPort := portOf(t, echoServer(t, "echo"))
	h := testharness.New(t, testharness.Options{})
	gw := h.StartGateway(t)
	for _, name := range []string{"host-a", "host-b"} {
		r := h.StartRunner(t, gw, name, testharness.RunnerOptions{SessionPorts: []int{echoPort, otherPort}})
		testharness.Eventually(t, 10*time.Second, name+" tunnel", func() bool { return r.Agent.Tunnels() == 1 && r.Agent.Sessions() == 1 })
	}
	alice := h.Client(t, ca.ProfileOperator, "alice")
	bob := h.Client(t, ca.ProfileOperator, "bob")
	connect := func(c *testharness.Client, runner string, ports []int, idle string) (protocol.Session, int, string) {
		t.Helper()
		body := fmt.Sprintf(`{"runner":%q,"ports":%s}`, runner, jsonInts(ports))
		if idle != "" {
			body = fmt.Sprintf(`{"runner":%q,"ports":%s,"idle_timeout":%q}`, runner, jsonInts(ports), idle)
		}
		status, answer, err := c.Raw(http.MethodPost, gw.APIURL+"/v1/tunnel/connect", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		var s protocol.Session
		_ = jsonUnmarshal(answer, &s)
		return s, status, string(answer)
	}
	roundTrip := func(c net.Conn, msg string) error {
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			return fmt.Errorf("echo %q: %q %v", msg, buf, err)
		}
		return nil
	}

	sa, status, answer := connect(alice, "host-a", []int{echoPort}, "2s")
	if status != http.StatusOK || sa.Token == "" || sa.ID == "" {
		t.Fatalf("connect: %d %s", status, answer)
	}
	// Bob joins the same session and may add an allowed port.
	sb, status, _ := connect(bob, "host-a", []int{otherPort}, "")
	if status != http.StatusOK || sb.ID != sa.ID || len(sb.Operators) != 2 || len(sb.Ports) != 2 {
		t.Fatalf("join: %d %+v", status, sb)
	}
	c1, err := alice.SessionPort(t, gw, sa.ID, sa.Token, echoPort)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c1.Close() }()
	c2, err := bob.SessionPort(t, gw, sb.ID, sb.Token, otherPort)
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(c1, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(c2, "bob"); err != nil {
		t.Fatal(err)
	}
	_ = c2.Close()

	var st protocol.SessionStatus
	if alice.Do(t, http.MethodGet, gw.APIURL+"/v1/tunnel/status?runner=host-a", nil, &st); !st.Up || st.Session.Token != "" || len(st.AllowedPorts) != 2 {
		t.Fatalf("status: %+v (the token must not be shown)", st)
	}

	// Refusals.
	sOther, status, _ := connect(alice, "host-b", []int{echoPort}, "")
	if status != http.StatusOK {
		t.Fatal("connect host-b")
	}
	for _, tt := range []struct {
		name, id, token string
		port            int
		want            string
	}{
		{"port outside the session", sa.ID, sa.Token, 22, "403"},
		{"token of another runner's session", sa.ID, sOther.Token, echoPort, "403"},
		{"no token", sa.ID, "", echoPort, "403"},
		{"unknown session", "sess-nope", sa.Token, echoPort, "404"},
	} {
		if c, err := alice.SessionPort(t, gw, tt.id, tt.token, tt.port); err == nil || !strings.Contains(err.Error(), ": "+tt.want+" ") {
			if c != nil {
				_ = c.Close()
			}
			t.Errorf("%s: %v; want %s", tt.name, err, tt.want)
		}
	}
	if _, status, answer := connect(alice, "host-a", []int{22}, ""); status != http.StatusForbidden {
		t.Errorf("connect to a port the runner does not allow: %d %s", status, answer)
	}
	nosy := h.Client(t, ca.ProfileRunner, "host-b")
	if status, _, _ := nosy.Raw(http.MethodPost, gw.APIURL+"/v1/tunnel/connect", "application/json", `{"runner":"host-a","ports":[22]}`); status != http.StatusForbidden {
		t.Errorf("a runner opened a session: %d", status)
	}

	// The override narrows what sessions may use.
	var allowed protocol.SessionPorts
	if status := alice.Do(t, http.MethodPut, gw.APIURL+"/v1/runners/host-b/session-ports", protocol.SessionPorts{Ports: []int{otherPort}}, &allowed); status != http.StatusOK || len(allowed.Ports) != 1 {
		t.Fatalf("override: %d %+v", status, allowed)
	}
	if _, status, _ := connect(bob, "host-b", []int{echoPort}, ""); status != http.StatusForbidden {
		t.Errorf("override did not narrow: %d", status)
	}

	// Traffic keeps the 2s-idle session alive; silence ends it.
	for range 4 {
		if err := roundTrip(c1, "still busy"); err != nil {
			t.Fatalf("session ended while busy: %v", err)
		}
		time.Sleep(700 * time.Millisecond) // traffic pattern under test, not a wait for a condition
	}
	testharness.Eventually(t, 10*time.Second, "idle session ended", func() bool {
		var st protocol.SessionStatus
		alice.Do(t, http.MethodGet, gw.APIURL+"/v1/tunnel/status?runner=host-a", nil, &st)
		return !st.Up
	})
	if err := roundTrip(c1, "after idle"); err == nil {
		t.Fatal("a stream of an idle-ended session still works")
	}

	// Disconnect tears host-b's session down at once, live streams too.
	c3, err := alice.SessionPort(t, gw, sOther.ID, sOther.Token, echoPort)
	if err != nil {
		t.Fatal(err)
	}
	if status := alice.Do(t, http.MethodDelete, gw.APIURL+"/v1/tunnel/disconnect?runner=host-b", nil, nil); status != http.StatusNoContent {
		t.Fatalf("disconnect: %d", status)
	}
	if err := roundTrip(c3, "after disconnect"); err == nil {
		t.Fatal("a stream survived disconnect")
	}
	rows, err := h.Store.AuditLog(context.Background(), store.AuditQuery{Action: "session.end", Limit: 10})
	if err != nil || len(rows) != 2 {
		t.Fatalf("session.end audit rows: %v %+v", err, rows)
	}
	reasons := rows[0].Detail + " | " + rows[1].Detail
	if !strings.Contains(reasons, "idle for 2s") || !strings.Contains(reasons, "disconnected by leash://operator/alice") {
		t.Errorf("end reasons: %s", reasons)
	}
	noStreamsInUse(t, alice, gw)
}

func jsonInts(v []int) string {
	parts := make([]string, len(v))
	for i, p := range v {
		parts[i] = strconv.Itoa(p)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
