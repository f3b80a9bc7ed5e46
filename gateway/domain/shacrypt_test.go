package domain

import (
	"errors"
	"strings"
	"testing"
)

// The test vectors published with the SHA-crypt specification, SHA-512
// part. The last one shows rounds below the minimum being raised to 1000.
var shaVectors = []struct{ setting, password, want string }{
	{"$6$saltstring", "Hello world!",
		"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
	{"$6$rounds=10000$saltstringsaltstring", "Hello world!",
		"$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v."},
	{"$6$rounds=5000$toolongsaltstring", "This is just a test",
		"$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0"},
	{"$6$rounds=1400$anotherlongsaltstring", "a very much longer text to encrypt.  This one even stretches over morethan one line.",
		"$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1"},
	{"$6$rounds=77777$short", "we have a short salt string but not a short password",
		"$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"},
	{"$6$rounds=123456$asaltof16chars..", "a short string",
		"$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1"},
	{"$6$rounds=10$roundstoolow", "the minimum number is still observed",
		"$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX."},
}

func TestSHA512CryptSpecVectors(t *testing.T) {
	for _, v := range shaVectors {
		t.Run(v.setting, func(t *testing.T) {
			got, err := sha512Crypt([]byte(v.password), v.setting)
			if err != nil {
				t.Fatal(err)
			}
			if got != v.want {
				t.Fatalf("got  %s\nwant %s", got, v.want)
			}
			// A complete hash works as its own setting.
			again, err := sha512Crypt([]byte(v.password), v.want)
			if err != nil || again != v.want {
				t.Fatalf("re-hash with the full string: %q, %v", again, err)
			}
		})
	}
}

func TestSHA512CryptVerifier(t *testing.T) {
	for _, v := range shaVectors {
		verify, err := verifierFor(v.want)
		if err != nil {
			t.Fatalf("%s: %v", v.want, err)
		}
		if !verify([]byte(v.password)) {
			t.Errorf("%s: the right password is refused", v.want)
		}
		for _, wrong := range []string{"", v.password + " ", strings.ToUpper(v.password), v.password[:len(v.password)-1]} {
			if verify([]byte(wrong)) {
				t.Errorf("%s: wrong password %q accepted", v.want, wrong)
			}
		}
	}
}

func TestSHA512CryptSettings(t *testing.T) {
	for _, tc := range []struct {
		setting string
		rounds  int
		custom  bool
		salt    string
		fail    bool
	}{
		{"$6$", 5000, false, "", false},
		{"$6$$", 5000, false, "", false},
		{"$6$abc$sum", 5000, false, "abc", false},
		{"$6$rounds=5000$abc", 5000, true, "abc", false},
		{"$6$rounds=1$abc", 1000, true, "abc", false},
		{"$6$rounds=99999999999999999999999$abc", 999_999_999, true, "abc", false},
		{"$6$rounds=12$", 1000, true, "", false},
		{"$6$rounds=x$abc", 0, false, "", true},
		{"$6$rounds=5000", 0, false, "", true},
		{"$5$abc", 0, false, "", true},
	} {
		set, _, err := parseSHASetting(tc.setting)
		if tc.fail {
			if !errors.Is(err, ErrHash) {
				t.Errorf("%q: err = %v, want ErrHash", tc.setting, err)
			}
			continue
		}
		if err != nil || set.rounds != tc.rounds || set.custom != tc.custom || set.salt != tc.salt {
			t.Errorf("%q: got %+v, %v; want rounds %d custom %v salt %q", tc.setting, set, err, tc.rounds, tc.custom, tc.salt)
		}
	}
}
