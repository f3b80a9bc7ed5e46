// Package minisign reads and writes minisign keys and signatures, so that
// Leash releases can be checked with `leash verify` or with the minisign
// tool itself (https://jedisct1.github.io/minisign/).
//
// The formats, from the public description:
//
//	public key file:  untrusted comment: <text>
//	                  base64("Ed" || key_id[8] || ed25519_pk[32])
//	secret key file:  untrusted comment: <text>
//	                  base64("Ed" || kdf_alg[2] || "B2" || kdf_salt[32] ||
//	                         opslimit[8] || memlimit[8] ||
//	                         key_id[8] || ed25519_sk[64] || checksum[32])
//	signature file:   untrusted comment: <text>
//	                  base64(alg[2] || key_id[8] || signature[64])
//	                  trusted comment: <text>
//	                  base64(global_signature[64])
//
// alg "ED" signs the BLAKE2b-512 hash of the file (minisign's default);
// the legacy "Ed" signs the file itself. The global signature covers
// signature || trusted comment, so the trusted comment cannot be changed
// either. The checksum is BLAKE2b-256("Ed" || key_id || sk).
//
// Secret keys are written unencrypted (kdf_alg 0, like `minisign -G -W`):
// Leash protects them with file permissions (mode 0600, checked on read),
// as it does its other private keys. Encrypted minisign keys are refused
// with a message saying so.
package minisign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/blake2b"
)

const (
	algLegacy = "Ed" // signs the message
	algHashed = "ED" // signs BLAKE2b-512(message)

	untrustedPrefix = "untrusted comment: "
	trustedPrefix   = "trusted comment: "

	// maxCommentLen bounds comments read from files.
	maxCommentLen = 1024

	pubKeyLen = 2 + 8 + ed25519.PublicKeySize
	secKeyLen = 2 + 2 + 2 + 32 + 8 + 8 + 8 + ed25519.PrivateKeySize + 32
	sigLen    = 2 + 8 + ed25519.SignatureSize
)

// KeyID identifies a key pair; signatures name the key that made them.
type KeyID [8]byte

// String is the key id as minisign prints it: the 8 bytes read as a
// little-endian integer, in upper-case hex.
func (id KeyID) String() string {
	return fmt.Sprintf("%016X", binary.LittleEndian.Uint64(id[:]))
}

// PublicKey verifies signatures.
type PublicKey struct {
	ID  KeyID
	Key ed25519.PublicKey
}

// PrivateKey makes signatures.
type PrivateKey struct {
	ID  KeyID
	Key ed25519.PrivateKey
}

// Public returns the public half of k.
func (k PrivateKey) Public() PublicKey {
	return PublicKey{ID: k.ID, Key: k.Key.Public().(ed25519.PublicKey)}
}

// GenerateKey makes a new key pair from rand.
func GenerateKey(rand io.Reader) (PrivateKey, error) {
	_, sk, err := ed25519.GenerateKey(rand)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("minisign: generate key: %w", err)
	}
	var id KeyID
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("minisign: generate key id: %w", err)
	}
	return PrivateKey{ID: id, Key: sk}, nil
}

// Marshal returns the public key file.
func (p PublicKey) Marshal() []byte {
	raw := make([]byte, 0, pubKeyLen)
	raw = append(raw, algLegacy...)
	raw = append(raw, p.ID[:]...)
	raw = append(raw, p.Key...)
	return fmt.Appendf(nil, "%sminisign public key %s\n%s\n", untrustedPrefix, p.ID,
		base64.StdEncoding.EncodeToString(raw))
}

// Marshal returns the (unencrypted) secret key file.
func (k PrivateKey) Marshal() []byte {
	raw := make([]byte, 0, secKeyLen)
	raw = append(raw, algLegacy...)
	raw = append(raw, 0, 0) // kdf_alg: none
	raw = append(raw, "B2"...)
	raw = append(raw, make([]byte, 32+8+8)...) // salt, opslimit, memlimit: unused
	raw = append(raw, k.ID[:]...)
	raw = append(raw, k.Key...)
	raw = append(raw, secretChecksum(k.ID, k.Key)...)
	return fmt.Appendf(nil, "%sleash release secret key %s (unencrypted; keep it mode 0600)\n%s\n",
		untrustedPrefix, k.ID, base64.StdEncoding.EncodeToString(raw))
}

func secretChecksum(id KeyID, sk ed25519.PrivateKey) []byte {
	h, _ := blake2b.New256(nil) // no key: cannot fail
	h.Write([]byte(algLegacy))
	h.Write(id[:])
	h.Write(sk)
	return h.Sum(nil)
}

// ParsePublicKey reads a public key file, or the bare base64 line that
// `minisign -P` takes.
func ParsePublicKey(b []byte) (PublicKey, error) {
	lines := splitLines(b)
	var line string
	switch {
	case len(lines) == 1:
		line = lines[0]
	case len(lines) == 2 && strings.HasPrefix(lines[0], untrustedPrefix):
		line = lines[1]
	default:
		return PublicKey{}, fmt.Errorf("%w: public key: want an untrusted comment line and a base64 line", ErrMalformed)
	}
	raw, err := base64.StdEncoding.DecodeString(line)
	if err != nil || len(raw) != pubKeyLen {
		return PublicKey{}, fmt.Errorf("%w: public key: want base64 of %d bytes", ErrMalformed, pubKeyLen)
	}
	if string(raw[:2]) != algLegacy {
		return PublicKey{}, fmt.Errorf("%w: public key: algorithm %q, want %q", ErrMalformed, raw[:2], algLegacy)
	}
	var p PublicKey
	copy(p.ID[:], raw[2:10])
	p.Key = ed25519.PublicKey(bytes.Clone(raw[10:]))
	return p, nil
}

// ParsePrivateKey reads an unencrypted secret key file.
func ParsePrivateKey(b []byte) (PrivateKey, error) {
	lines := splitLines(b)
	if len(lines) != 2 || !strings.HasPrefix(lines[0], untrustedPrefix) {
		return PrivateKey{}, fmt.Errorf("%w: secret key: want an untrusted comment line and a base64 line", ErrMalformed)
	}
	raw, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil || len(raw) != secKeyLen {
		return PrivateKey{}, fmt.Errorf("%w: secret key: want base64 of %d bytes", ErrMalformed, secKeyLen)
	}
	if string(raw[:2]) != algLegacy || string(raw[4:6]) != "B2" {
		return PrivateKey{}, fmt.Errorf("%w: secret key: unknown algorithms %q/%q", ErrMalformed, raw[:2], raw[4:6])
	}
	if raw[2] != 0 || raw[3] != 0 {
		return PrivateKey{}, fmt.Errorf("%w (kdf %q); make an unencrypted one with `minisign -G -W` or the release tool's keygen",
			ErrEncryptedKey, raw[2:4])
	}
	rest := raw[54:]
	var k PrivateKey
	copy(k.ID[:], rest[:8])
	k.Key = ed25519.PrivateKey(bytes.Clone(rest[8 : 8+ed25519.PrivateKeySize]))
	sum := rest[8+ed25519.PrivateKeySize:]
	if subtle.ConstantTimeCompare(sum, secretChecksum(k.ID, k.Key)) != 1 {
		return PrivateKey{}, fmt.Errorf("%w: secret key: checksum mismatch", ErrMalformed)
	}
	seed := ed25519.NewKeyFromSeed(k.Key.Seed())
	if subtle.ConstantTimeCompare(seed, k.Key) != 1 {
		return PrivateKey{}, fmt.Errorf("%w: secret key: public half does not match the seed", ErrMalformed)
	}
	return k, nil
}

// Sign returns a signature file over msg (prehashed, "ED") carrying
// trustedComment, which must be one line.
func Sign(k PrivateKey, msg []byte, trustedComment string) ([]byte, error) {
	if strings.ContainsAny(trustedComment, "\r\n") || len(trustedComment) > maxCommentLen {
		return nil, fmt.Errorf("minisign: trusted comment must be one line of at most %d bytes", maxCommentLen)
	}
	h := blake2b.Sum512(msg)
	sig := ed25519.Sign(k.Key, h[:])
	global := ed25519.Sign(k.Key, append(bytes.Clone(sig), trustedComment...))
	raw := make([]byte, 0, sigLen)
	raw = append(raw, algHashed...)
	raw = append(raw, k.ID[:]...)
	raw = append(raw, sig...)
	return fmt.Appendf(nil, "%ssignature from leash release key %s\n%s\n%s%s\n%s\n",
		untrustedPrefix, k.ID, base64.StdEncoding.EncodeToString(raw),
		trustedPrefix, trustedComment, base64.StdEncoding.EncodeToString(global)), nil
}

// Signature is a parsed signature file.
type Signature struct {
	Algorithm      string // "ED" (prehashed) or "Ed"
	KeyID          KeyID
	Sig            []byte
	TrustedComment string
	GlobalSig      []byte
}

// ParseSignature reads a signature file strictly: four lines, nothing else.
func ParseSignature(b []byte) (Signature, error) {
	lines := splitLines(b)
	if len(lines) != 4 {
		return Signature{}, fmt.Errorf("%w: signature: want 4 lines, got %d", ErrMalformed, len(lines))
	}
	if !strings.HasPrefix(lines[0], untrustedPrefix) || !strings.HasPrefix(lines[2], trustedPrefix) {
		return Signature{}, fmt.Errorf("%w: signature: want untrusted comment, signature, trusted comment, global signature", ErrMalformed)
	}
	raw, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil || len(raw) != sigLen {
		return Signature{}, fmt.Errorf("%w: signature: want base64 of %d bytes on line 2", ErrMalformed, sigLen)
	}
	global, err := base64.StdEncoding.DecodeString(lines[3])
	if err != nil || len(global) != ed25519.SignatureSize {
		return Signature{}, fmt.Errorf("%w: signature: want base64 of %d bytes on line 4", ErrMalformed, ed25519.SignatureSize)
	}
	s := Signature{Algorithm: string(raw[:2]), Sig: raw[10:], GlobalSig: global,
		TrustedComment: strings.TrimPrefix(lines[2], trustedPrefix)}
	copy(s.KeyID[:], raw[2:10])
	if s.Algorithm != algHashed && s.Algorithm != algLegacy {
		return Signature{}, fmt.Errorf("%w: signature: unknown algorithm %q", ErrMalformed, s.Algorithm)
	}
	if len(s.TrustedComment) > maxCommentLen {
		return Signature{}, fmt.Errorf("%w: signature: trusted comment longer than %d bytes", ErrMalformed, maxCommentLen)
	}
	return s, nil
}

// Verify checks a signature file over msg with p and returns its trusted
// comment. Errors wrap ErrMalformed, ErrKeyID or ErrSignature.
func Verify(p PublicKey, msg, sigFile []byte) (string, error) {
	s, err := ParseSignature(sigFile)
	if err != nil {
		return "", err
	}
	if s.KeyID != p.ID {
		return "", fmt.Errorf("%w: signed by key %s, the public key is %s", ErrKeyID, s.KeyID, p.ID)
	}
	signed := msg
	if s.Algorithm == algHashed {
		h := blake2b.Sum512(msg)
		signed = h[:]
	}
	if !ed25519.Verify(p.Key, signed, s.Sig) {
		return "", fmt.Errorf("%w: the signed file was changed or the signature is not from key %s", ErrSignature, p.ID)
	}
	if !ed25519.Verify(p.Key, append(bytes.Clone(s.Sig), s.TrustedComment...), s.GlobalSig) {
		return "", fmt.Errorf("%w: the trusted comment was changed", ErrSignature)
	}
	return s.TrustedComment, nil
}

// splitLines splits b into lines without their endings (LF or CRLF); a
// final newline does not make an empty last line.
func splitLines(b []byte) []string {
	s := strings.ReplaceAll(string(b), "\r\n", "\n")
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
