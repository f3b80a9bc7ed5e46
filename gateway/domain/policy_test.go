package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestValidate(t *testing.T) {
	good := bcryptHash(t, "pw", "$2a$")
	for _, tc := range []struct {
		name string
		p    Policy
		want []string // each must appear; nil: valid
	}{
		{"zero value", Policy{}, nil},
		{"everything set", Policy{
			AllowCIDRs: []string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7", "::ffff:10.0.0.0/104"},
			TimeRanges: []string{"Mon-Fri 08:00-18:00", "Sat 10:00-12:00", "22:00-02:00", "Sun,Wed 00:00-24:00"},
			Credentials: []Credential{{"alice", good}, {"bob", shaHello}, {"carol", bcryptHash(t, "x", "$2b$")},
				{"dave", bcryptHash(t, "x", "$2y$")}},
			Realm: "staff only", TrustedForwarders: []string{"127.0.0.1/32", "fd00::/8"},
			MaxConcurrent: 10, MaxBodyBytes: 1 << 20, Stealth: true,
			ReadTimeout: Duration(time.Second), WriteTimeout: Duration(time.Minute), IdleTimeout: Duration(time.Hour),
		}, nil},
		{"cidr garbage", Policy{AllowCIDRs: []string{"10.0.0.0/33", "nope", ""}},
			[]string{`allow_cidrs[0] "10.0.0.0/33"`, `allow_cidrs[1] "nope"`, `allow_cidrs[2] ""`}},
		{"cidr host bits", Policy{AllowCIDRs: []string{"10.0.0.1/8"}}, []string{"host bits", "10.0.0.0/8"}},
		{"cidr zone", Policy{AllowCIDRs: []string{"fe80::1%eth0"}}, []string{"zones"}},
		{"forwarder everyone", Policy{TrustedForwarders: []string{"0.0.0.0/0", "::/0", "::ffff:0:0/96"}},
			[]string{"trusted_forwarders[0]", "trusted_forwarders[1]", "trusted_forwarders[2]", "trusts every peer"}},
		{"forwarder garbage", Policy{TrustedForwarders: []string{"proxy.local"}}, []string{`trusted_forwarders[0] "proxy.local"`}},
		{"time ranges", Policy{TimeRanges: []string{"Mon-Fry 08:00-18:00", "Mon 8:00-18:00", "Mon 08:00-08:00",
			"Mon 24:00-02:00", "Mon 08:60-09:00", "08:00", "Mon Tue 08:00-09:00", "", "+8:00-09:00", "Mon,,Tue 08:00-09:00"}},
			[]string{`time_ranges[0]`, `day "Fry"`, `time_ranges[1]`, `time_ranges[2]`, "empty range", `time_ranges[3]`,
				`time_ranges[4]`, `time_ranges[5]`, `time_ranges[6]`, `time_ranges[7]`, `time_ranges[8]`, `time_ranges[9]`}},
		{"credential problems", Policy{Credentials: []Credential{
			{"", good}, {"a:b", good}, {"tab\tuser", good}, {"alice", good}, {"alice", good},
			{"nohash", ""}, {"md5", "$1$salt$hash"}, {"plain", "secret"}, {"2x", "$2x$04$" + strings.Repeat("a", 53)},
			{"short", "$2a$04$abc"}, {"costly", "$2a$17$" + good[7:]},
			{"shabad", "$6$salt$tooshort"}, {"shalong", "$6$salt$" + strings.Repeat("!", 86)},
			{"shalow", "$6$rounds=10$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
			{"shamany", "$6$rounds=3000000$s$" + strings.Repeat("a", 86)},
			{"shazero", "$6$rounds=05000$s$" + strings.Repeat("a", 86)},
			{"shasalt", "$6$saltsaltsaltsaltX$" + strings.Repeat("a", 86)},
			{"shacolon", "$6$a:b$" + strings.Repeat("a", 86)},
			{"shanosum", "$6$salt"},
		}}, []string{"credentials[0]: user is empty", `credentials[1] user "a:b" contains ':'`,
			"credentials[2]", "control characters", `credentials[4] user "alice" repeats credentials[3]`,
			`credentials[5] (user "nohash") hash`, "credentials[6]", "want bcrypt", "credentials[7]", "credentials[8]", "$2x",
			"credentials[9]", "60 characters", "credentials[10]", "cost 17",
			"credentials[11]", "credentials[12]", "sum must be 86", "credentials[13]", "rounds 10 is outside",
			"credentials[14]", "rounds 3000000 is above", "credentials[15]", "plain decimal", "credentials[16]", "longer than 16",
			"credentials[17]", "credentials[18]", "no sum"}},
		{"realm without credentials", Policy{Realm: "x"}, []string{"realm is set but there are no credentials"}},
		{"realm injection", Policy{Realm: "a\", evil=\"1", Credentials: []Credential{{"u", good}}}, []string{"realm", "quotes"}},
		{"realm newline", Policy{Realm: "a\r\nSet-Cookie: x", Credentials: []Credential{{"u", good}}}, []string{"control characters"}},
		{"negatives", Policy{MaxConcurrent: -1, MaxBodyBytes: -1, ReadTimeout: -1, WriteTimeout: Duration(-time.Second), IdleTimeout: -2},
			[]string{"max_concurrent -1", "max_body_bytes -1", "read_timeout -1ns", "write_timeout -1s", "idle_timeout -2ns"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fmt.Sprintf("%#v", tc.p)
			err := tc.p.Validate()
			if after := fmt.Sprintf("%#v", tc.p); after != before {
				t.Fatalf("Validate changed the policy")
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("err = %v, want ErrPolicy", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// Every problem comes back in one error, one per line.
func TestValidateReportsEveryProblem(t *testing.T) {
	p := Policy{AllowCIDRs: []string{"x"}, TrustedForwarders: []string{"y"}, TimeRanges: []string{"z"},
		Credentials: []Credential{{"", "w"}}, Realm: `"`, MaxConcurrent: -1, MaxBodyBytes: -1,
		ReadTimeout: -1, WriteTimeout: -1, IdleTimeout: -1}
	err := p.Validate()
	lines := strings.Split(err.Error(), "\n")
	if want := 1 + 11; len(lines) != want { // header + one line each
		t.Fatalf("got %d lines, want %d:\n%v", len(lines), want, err)
	}
	if !errors.Is(err, ErrPolicy) || !errors.Is(err, ErrHash) {
		t.Fatalf("err does not wrap ErrPolicy and ErrHash: %v", err)
	}
}

func TestPolicyDecoding(t *testing.T) {
	const y = `
allow_cidrs: [10.0.0.0/8]
time_ranges: ["Mon-Fri 08:00-18:00"]
credentials:
  - user: alice
    hash: "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
realm: staff
trusted_forwarders: [127.0.0.1]
max_concurrent: 4
max_body_bytes: 1024
read_timeout: 5s
write_timeout: 1m
idle_timeout: 2m30s
stealth: true
`
	var fromYAML Policy
	dec := yaml.NewDecoder(strings.NewReader(y))
	dec.KnownFields(true)
	if err := dec.Decode(&fromYAML); err != nil {
		t.Fatal(err)
	}
	want := Timeouts{Read: 5 * time.Second, Write: time.Minute, Idle: 150 * time.Second}
	if got := fromYAML.Timeouts(); got != want || !fromYAML.Stealth || fromYAML.MaxBodyBytes != 1024 ||
		fromYAML.Credentials[0].Hash != shaHello {
		t.Fatalf("yaml: %+v", fromYAML)
	}
	if err := fromYAML.Validate(); err != nil {
		t.Fatal(err)
	}
	// JSON round trip keeps durations as text.
	b, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"idle_timeout":"2m30s"`)) {
		t.Fatalf("json: %s", b)
	}
	var fromJSON Policy
	if err := json.Unmarshal(b, &fromJSON); err != nil || fromJSON.Timeouts() != want {
		t.Fatalf("json back: %+v, %v", fromJSON, err)
	}
	// A bare JSON number would mean nanoseconds: refused.
	if err := json.Unmarshal([]byte(`{"read_timeout": 30}`), &fromJSON); err == nil {
		t.Fatal("a numeric JSON duration was accepted")
	}
	if err := yaml.Unmarshal([]byte(`read_timeout: soon`), &fromYAML); err == nil {
		t.Fatal("a bad YAML duration was accepted")
	}
}

// Printing or logging a policy never shows a hash.
func TestCredentialRedaction(t *testing.T) {
	p := Policy{Credentials: []Credential{{"alice", shaHello}}}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "cred", p.Credentials[0])
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%v %+v", p.Credentials, p), buf.String()} {
		if strings.Contains(s, "svn8U") || !strings.Contains(s, "alice") {
			t.Errorf("hash shown or user missing: %s", s)
		}
	}
}
