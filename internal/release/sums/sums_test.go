package sums_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/leashpki/leash/internal/release/sums"
)

const hexSum = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// TestParse accepts sha256sum output and refuses names that are paths.
func TestParse(t *testing.T) {
	good := hexSum + "  leash_v1_linux_amd64.tar.gz\n" + hexSum + " *leash.rb\n"
	es, err := sums.Parse([]byte(good))
	if err != nil || len(es) != 2 || es[1].Name != "leash.rb" {
		t.Fatalf("Parse = %v, %v", es, err)
	}
	bad := map[string]string{
		"parent":        hexSum + "  ../x\n",
		"dotdot":        hexSum + "  ..\n",
		"absolute":      hexSum + "  /etc/passwd\n",
		"subdir":        hexSum + "  a/b\n",
		"backslash":     hexSum + `  ..\x` + "\n",
		"drive":         hexSum + "  C:x\n",
		"control":       hexSum + "  a\tb\n",
		"duplicate":     hexSum + "  a\n" + hexSum + "  a\n",
		"short hex":     hexSum[:60] + "  a\n",
		"bad hex":       strings.Replace(hexSum, "e", "g", 1) + "  a\n",
		"one space":     hexSum + " a\n",
		"no newline":    hexSum + "  a",
		"empty":         "",
		"blank line":    hexSum + "  a\n\n",
		"no name":       hexSum + "  \n",
		"windows lines": hexSum + "  a\r\n",
	}
	for name, text := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := sums.Parse([]byte(text)); !errors.Is(err, sums.ErrMalformed) {
				t.Fatalf("Parse(%q) = %v; want ErrMalformed", text, err)
			}
		})
	}
}

// TestFormatRefusesPaths: the writer cannot produce what the reader refuses.
func TestFormatRefusesPaths(t *testing.T) {
	if _, err := sums.Format([]sums.Entry{{Name: "../x"}}); !errors.Is(err, sums.ErrMalformed) {
		t.Fatalf("Format(../x) = %v", err)
	}
	out, err := sums.Format([]sums.Entry{{Name: "b"}, {Name: "a"}})
	if err != nil || !strings.HasSuffix(strings.SplitN(string(out), "\n", 2)[0], "  a") {
		t.Fatalf("Format = %q, %v; want sorted", out, err)
	}
}
