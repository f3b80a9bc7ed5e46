package domain

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Bounds on what a login attempt may cost. Every attempt, even a wrong
// one for an unknown user, runs one hash, so a hash that takes seconds
// hands strangers a cheap way to burn the gateway's CPU.
const (
	// MaxBcryptCost is the highest bcrypt cost Validate accepts (about a
	// second per attempt on a current core at 16).
	MaxBcryptCost = 16
	// MaxSHA512Rounds is the highest sha512-crypt rounds Validate accepts.
	MaxSHA512Rounds = 2_000_000
	// Longer user names or passwords are refused without hashing:
	// sha512-crypt's work grows with the password's length.
	maxUserLen     = 256
	maxPasswordLen = 1024
	// authCacheSize bounds the remembered successful logins.
	authCacheSize = 1024
)

// verifier checks a password against one stored hash.
type verifier func(password []byte) bool

// verifierFor checks a stored hash strictly and returns its verifier.
func verifierFor(h string) (verifier, error) {
	switch {
	case h == "":
		return nil, fmt.Errorf("%w: empty", ErrHash)
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		if len(h) != 60 {
			return nil, fmt.Errorf("%w: a bcrypt hash has 60 characters, this one %d", ErrHash, len(h))
		}
		cost, err := bcrypt.Cost([]byte(h))
		if err != nil {
			return nil, fmt.Errorf("%w: bcrypt: %w", ErrHash, err)
		}
		if cost > MaxBcryptCost {
			return nil, fmt.Errorf("%w: bcrypt cost %d is above %d: every login attempt, even a wrong one, would cost too much CPU", ErrHash, cost, MaxBcryptCost)
		}
		hb := []byte(h)
		return func(pw []byte) bool { return bcrypt.CompareHashAndPassword(hb, pw) == nil }, nil
	case strings.HasPrefix(h, shaPrefix):
		if err := checkSHAHash(h); err != nil {
			return nil, err
		}
		return func(pw []byte) bool {
			got, err := sha512Crypt(pw, h)
			return err == nil && subtle.ConstantTimeCompare([]byte(got), []byte(h)) == 1
		}, nil
	case strings.HasPrefix(h, "$2"):
		return nil, fmt.Errorf("%w: bcrypt variant %.4q: use $2a$, $2b$ or $2y$", ErrHash, h)
	default:
		return nil, fmt.Errorf("%w: want bcrypt ($2a$, $2b$, $2y$) or sha512-crypt ($6$)", ErrHash)
	}
}

// checkSHAHash accepts only what a conforming implementation writes: a
// rounds value inside the specification's range (it writes clamped values
// back, so "rounds=10" is hand-made or damaged), a salt of at most 16
// characters without '$', ':' or control characters, and an 86-character
// sum in crypt's alphabet.
func checkSHAHash(h string) error {
	rest := strings.TrimPrefix(h, shaPrefix)
	if r, ok := strings.CutPrefix(rest, shaRoundsPrefix); ok {
		num, after, _ := strings.Cut(r, "$")
		n, ok := decimal(num)
		switch {
		case !ok:
			return fmt.Errorf("%w: sha512-crypt rounds %q is not a plain decimal number", ErrHash, num)
		case n < shaRoundsMin || n > shaRoundsMax:
			return fmt.Errorf("%w: sha512-crypt rounds %d is outside %d..%d", ErrHash, n, shaRoundsMin, shaRoundsMax)
		case n > MaxSHA512Rounds:
			return fmt.Errorf("%w: sha512-crypt rounds %d is above %d: every login attempt, even a wrong one, would cost too much CPU", ErrHash, n, MaxSHA512Rounds)
		}
		rest = after
	}
	salt, sum, ok := strings.Cut(rest, "$")
	switch {
	case !ok:
		return fmt.Errorf("%w: sha512-crypt hash has no sum after the salt", ErrHash)
	case len(salt) > shaSaltMax:
		return fmt.Errorf("%w: sha512-crypt salt is longer than %d characters", ErrHash, shaSaltMax)
	case strings.ContainsRune(salt, ':') || hasControl(salt):
		return fmt.Errorf("%w: sha512-crypt salt contains ':' or control characters", ErrHash)
	case len(sum) != shaSumLen || strings.Trim(sum, cryptAlphabet) != "":
		return fmt.Errorf("%w: sha512-crypt sum must be %d characters of [./0-9A-Za-z]", ErrHash, shaSumLen)
	}
	return nil
}

// decimal parses 1 to 9 digits without sign or leading zero.
func decimal(s string) (int, bool) {
	if s == "" || len(s) > 9 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// credential is a compiled Credential; users are matched by digest so
// that comparing them takes the same time whatever their lengths.
type credential struct {
	user   string
	digest [sha256.Size]byte
	verify verifier
}

func newCredential(user string, v verifier) credential {
	return credential{user: user, digest: sha256.Sum256([]byte(user)), verify: v}
}

// authenticate checks r's Basic credentials against c. It compares the
// user against every credential, and runs a hash even for an unknown user
// (against the first credential's hash, result discarded), so neither the
// user names nor their number show in the timing. It returns the user
// that logged in.
func (c *compiled) authenticate(r *http.Request) (string, Reason) {
	if len(r.Header.Values("Authorization")) == 0 {
		return "", ReasonAuthMissing
	}
	if len(r.Header.Values("Authorization")) > 1 {
		return "", ReasonAuthMalformed
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", ReasonAuthMalformed
	}
	if len(user) > maxUserLen || len(pass) > maxPasswordLen {
		return "", ReasonAuthTooLong
	}
	digest := sha256.Sum256([]byte(user))
	match := -1
	for i := range c.creds {
		if subtle.ConstantTimeCompare(digest[:], c.creds[i].digest[:]) == 1 {
			match = i
		}
	}
	key := c.cache.key(user, pass)
	if match >= 0 && c.cache.has(key) {
		return c.creds[match].user, ""
	}
	if match < 0 {
		c.creds[0].verify([]byte(pass))
		return "", ReasonAuthUnknownUser
	}
	if !c.creds[match].verify([]byte(pass)) {
		return "", ReasonAuthWrongPassword
	}
	c.cache.add(key)
	return c.creds[match].user, ""
}

// authCache remembers successful logins so that a browser sending the
// same Basic header with every asset does not pay a bcrypt each time. It
// keeps HMAC digests under a random key of its own, never passwords, and
// only successes, which only holders of a password can add. Each compiled
// policy has its own cache: a reload that changes a password forgets the
// old one at once.
type authCache struct {
	hmacKey [32]byte
	mu      sync.Mutex
	ok      map[[sha256.Size]byte]struct{}
}

func newAuthCache() *authCache {
	c := &authCache{ok: map[[sha256.Size]byte]struct{}{}}
	rand.Read(c.hmacKey[:])
	return c
}

func (c *authCache) key(user, pass string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.hmacKey[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

func (c *authCache) has(k [sha256.Size]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.ok[k]
	return ok
}

func (c *authCache) add(k [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ok) >= authCacheSize {
		clear(c.ok)
	}
	c.ok[k] = struct{}{}
}
