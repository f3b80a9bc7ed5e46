package domain

import (
	"crypto/sha512"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SHA-512-crypt ("$6$"), written from Ulrich Drepper's public specification
// "Unix crypt using SHA-256 and SHA-512".

const (
	shaPrefix        = "$6$"
	shaRoundsPrefix  = "rounds="
	shaRoundsDefault = 5000
	shaRoundsMin     = 1000
	shaRoundsMax     = 999_999_999
	shaSaltMax       = 16
	shaSumLen        = 86 // 64 bytes in the crypt base-64 alphabet
	cryptAlphabet    = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// shaSetting is the parameter part of a $6$ string.
type shaSetting struct {
	rounds int
	custom bool // rounds= was given, so it is written back
	salt   string
}

// parseSHASetting reads "$6$[rounds=N$]salt[$...]" the way the
// specification does: N is clamped into [1000, 999999999], the salt ends
// at the next '$' and is cut to 16 characters. It returns the setting and
// whatever follows the salt's '$' (the encoded sum, if any).
func parseSHASetting(s string) (shaSetting, string, error) {
	rest, ok := strings.CutPrefix(s, shaPrefix)
	if !ok {
		return shaSetting{}, "", fmt.Errorf("%w: no %s prefix", ErrHash, shaPrefix)
	}
	set := shaSetting{rounds: shaRoundsDefault}
	if r, ok := strings.CutPrefix(rest, shaRoundsPrefix); ok {
		num, after, found := strings.Cut(r, "$")
		if !found {
			return shaSetting{}, "", fmt.Errorf("%w: rounds= without a terminating $", ErrHash)
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil && !isRangeErr(err) {
			return shaSetting{}, "", fmt.Errorf("%w: rounds %q is not a number", ErrHash, num)
		}
		if err != nil || n > shaRoundsMax {
			n = shaRoundsMax
		}
		set.rounds, set.custom, rest = max(int(n), shaRoundsMin), true, after
	}
	salt, sum, _ := strings.Cut(rest, "$")
	if len(salt) > shaSaltMax {
		salt = salt[:shaSaltMax]
	}
	set.salt = salt
	return set, sum, nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// sha512Crypt computes the full $6$ string for password under the setting
// in s (a complete hash works as a setting too: its sum is ignored).
func sha512Crypt(password []byte, s string) (string, error) {
	set, _, err := parseSHASetting(s)
	if err != nil {
		return "", err
	}
	sum := shaSum(password, []byte(set.salt), set.rounds)
	var b strings.Builder
	b.WriteString(shaPrefix)
	if set.custom {
		b.WriteString(shaRoundsPrefix)
		b.WriteString(strconv.Itoa(set.rounds))
		b.WriteByte('$')
	}
	b.WriteString(set.salt)
	b.WriteByte('$')
	b.WriteString(shaEncode(sum))
	return b.String(), nil
}

// shaSum runs the specification's steps over password p and salt s.
func shaSum(p, s []byte, rounds int) []byte {
	h := sha512.New()
	sumOf := func(h hash.Hash) []byte { return h.Sum(nil) }

	// Digest B: password, salt, password.
	h.Write(p)
	h.Write(s)
	h.Write(p)
	b := sumOf(h)

	// Digest A: password, salt, B stretched to the password's length,
	// then for each bit of the length (lowest first) B for a one, the
	// password for a zero.
	h.Reset()
	h.Write(p)
	h.Write(s)
	h.Write(repeatTo(b, len(p)))
	for n := len(p); n > 0; n >>= 1 {
		if n&1 == 1 {
			h.Write(b)
		} else {
			h.Write(p)
		}
	}
	a := sumOf(h)

	// P sequence: the digest of the password repeated len(p) times,
	// stretched to len(p) bytes.
	h.Reset()
	for range len(p) {
		h.Write(p)
	}
	pseq := repeatTo(sumOf(h), len(p))

	// S sequence: the digest of the salt repeated 16+A[0] times, cut to
	// the salt's length.
	h.Reset()
	for range 16 + int(a[0]) {
		h.Write(s)
	}
	sseq := sumOf(h)[:len(s)]

	// The rounds.
	c := a
	for i := range rounds {
		h.Reset()
		if i%2 == 1 {
			h.Write(pseq)
		} else {
			h.Write(c)
		}
		if i%3 != 0 {
			h.Write(sseq)
		}
		if i%7 != 0 {
			h.Write(pseq)
		}
		if i%2 == 1 {
			h.Write(c)
		} else {
			h.Write(pseq)
		}
		c = h.Sum(c[:0])
	}
	return c
}

// repeatTo returns d repeated and cut to exactly n bytes.
func repeatTo(d []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, d[:min(len(d), n-len(out))]...)
	}
	return out
}

// shaEncode writes the 64-byte sum in crypt's base-64 with the byte order
// the specification lists for SHA-512: 21 groups of three bytes, group k
// taking bytes k·22, k·22+21 and k·22+42 (all mod 63), then byte 63 alone.
func shaEncode(sum []byte) string {
	out := make([]byte, 0, shaSumLen)
	put := func(w uint32, n int) {
		for range n {
			out = append(out, cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	for k := range 21 {
		i := k * 22 % 63
		put(uint32(sum[i])<<16|uint32(sum[(i+21)%63])<<8|uint32(sum[(i+42)%63]), 4)
	}
	put(uint32(sum[63]), 2)
	return string(out)
}
