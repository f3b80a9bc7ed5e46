package store

import (
	"slices"
	"strings"
)

// BlobRange returns the range [lo, hi) of the keys below dir: those that
// begin with dir + "/". Compared as bytes, every such key sorts from
// dir + "/" up to dir + "0", '0' being the byte after '/', and nothing else
// does. Unlike LIKE, the range has no wildcards to escape. Backends query
// it with a byte-order collation (SQLite BINARY, PostgreSQL "C").
func BlobRange(dir string) (lo, hi string) {
	return dir + "/", dir + "0"
}

// BlobChildren reduces keys, all below dir ("" for the root), to dir's
// direct children: a key further down becomes the path of its ancestor
// that is a child of dir. The result is sorted, without repeats.
func BlobChildren(dir string, keys []string) []string {
	start := 0
	if dir != "" {
		start = len(dir) + 1
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if i := strings.IndexByte(k[start:], '/'); i >= 0 {
			k = k[:start+i]
		}
		out = append(out, k)
	}
	// A directory path sorts apart from the keys below it ("a/b" < "a/b-c"
	// < "a/b/c"), so sort again before dropping repeats.
	slices.Sort(out)
	return slices.Compact(out)
}
