package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/leashpki/leash/internal/tunnelio"
	"github.com/leashpki/leash/protocol"
)

// TestRunnerRefusesUndeclaredTargets plays a compromised gateway: it asks
// the runner's tunnel for addresses, undeclared names and ports, with
// bytes for the target right behind each request, and the runner refuses
// every one without dialing anything. Declared targets get those bytes.
func TestRunnerRefusesUndeclaredTargets(t *testing.T) {
	var dialed atomic.Int32
	early := make(chan string, 8) // what reached the target before the test closed the stream
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialed.Add(1)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			early <- line
			_ = c.Close()
		}
	}()
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	declared := portStr
	a, err := New(Config{Name: "r1", Gateway: "https://gw:8443", StateDir: t.TempDir(),
		Services: map[string]string{"db": ln.Addr().String()}, SessionPorts: []int{mustAtoi(t, declared)}})
	if err != nil {
		t.Fatal(err)
	}
	gwSide, runnerSide := net.Pipe()
	client, err := yamux.Client(runnerSide, tunnelio.Config(a.log, 0))
	if err != nil {
		t.Fatal(err)
	}
	server, err := yamux.Server(gwSide, tunnelio.Config(a.log, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.serveTunnel(ctx, client)
	}()
	defer func() {
		cancel()
		_ = server.Close()
		_ = client.Close()
		<-done
	}()

	ask := func(line string) protocol.StreamReply {
		t.Helper()
		s, err := server.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Close() }()
		_ = s.SetDeadline(time.Now().Add(5 * time.Second))
		// Bytes for the target right after the request, as the gateway
		// sends them for exposed ports: they may reach a declared target
		// only.
		if _, err := s.Write([]byte(line + "\nearly bytes\n")); err != nil {
			t.Fatal(err)
		}
		answer, err := bufio.NewReader(s).ReadString('\n')
		if err != nil {
			return protocol.StreamReply{Error: "closed: " + err.Error()}
		}
		var r protocol.StreamReply
		if err := json.Unmarshal([]byte(answer), &r); err != nil {
			t.Fatalf("answer %q: %v", answer, err)
		}
		return r
	}
	refused := []string{
		`{"kind":"tcp","service":"` + ln.Addr().String() + `"}`,
		`{"kind":"tcp","service":"169.254.169.254:80"}`,
		`{"kind":"tcp","service":"../db"}`,
		`{"kind":"port","service":"22"}`,
		`{"kind":"port","service":"` + declared + `0"}`,
		`{"kind":"port","service":"-1"}`,
		`{"kind":"docker","service":"db"}`,
		`{"kind":"http","service":"db"}`,
		`not json`,
	}
	for _, line := range refused {
		if r := ask(line); r.OK {
			t.Errorf("runner accepted %s", line)
		}
	}
	if n := dialed.Load(); n != 0 {
		t.Fatalf("the runner dialed %d times for refused requests", n)
	}
	for _, line := range []string{`{"kind":"tcp","service":"db"}`, `{"kind":"port","service":"` + declared + `"}`} {
		if r := ask(line); !r.OK {
			t.Errorf("runner refused declared %s: %s", line, r.Error)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for dialed.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := dialed.Load(); n != 2 {
		t.Errorf("dialed %d times for 2 declared targets", n)
	}
	for range 2 {
		if got := <-early; got != "early bytes\n" {
			t.Errorf("a declared target got %q before its stream closed, want the bytes sent after the request", got)
		}
	}
	if !strings.Contains(ask(`{"kind":"tcp","service":"nope"}`).Error, "not declared") {
		t.Error("refusal does not say why")
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
