package ui

import "testing"

// TestValidPrefix: only clean single-slash absolute paths pass; every
// shape that a browser could read as another origin is refused.
func TestValidPrefix(t *testing.T) {
	for _, p := range []string{"/", "/ui", "/leash", "/a/b-c/d_e.f~g"} {
		if err := ValidPrefix(p); err != nil {
			t.Errorf("ValidPrefix(%q) = %v; want nil", p, err)
		}
	}
	for _, p := range []string{"", "ui", "//evil", "///evil", `/\evil`, `\\evil`, "https://evil", "/a/../b", "/..", "/x\tevil",
		"/x\nevil", "/%2f%2fevil", "/a?b", "/a#b", "/user@evil", "/a//b", "/é"} {
		if err := ValidPrefix(p); err == nil {
			t.Errorf("ValidPrefix(%q) = nil; want an error", p)
		}
	}
}

// FuzzValidPrefix: an accepted prefix never starts a protocol-relative or
// absolute URL, whatever follows it.
func FuzzValidPrefix(f *testing.F) {
	for _, s := range []string{"/ui", "//evil", `/\evil`, "https://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidPrefix(p) != nil {
			return
		}
		if len(p) > 1 && (p[1] == '/' || p[1] == '\\') || p[0] != '/' {
			t.Fatalf("accepted %q", p)
		}
	})
}
