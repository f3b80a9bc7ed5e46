package ca

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/leashpki/leash/internal/keyfile"
)

// File names inside a CA directory.
const (
	SettingsFile         = "ca.json"
	RootCertFile         = "root_ca.crt"
	RootKeyFile          = "root_ca.key"
	IntermediateCertFile = "intermediate_ca.crt"
	IntermediateKeyFile  = "intermediate_ca.key"
	TokenKeyFile         = "token_signer.key"
)

// Duration is a time.Duration that reads and writes JSON as "24h".
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"24h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Lifetimes bound the validity of certificates of one profile.
type Lifetimes struct {
	Default Duration `json:"default"`
	Min     Duration `json:"min"`
	Max     Duration `json:"max"`
}

// Settings is the CA's metadata, stored as ca.json in the CA directory.
// Unknown keys are rejected when it is read.
type Settings struct {
	Name            string    `json:"name"`
	Audience        string    `json:"audience"` // host name in token audiences
	KeyType         KeyType   `json:"key_type"`
	EncryptedKeys   bool      `json:"encrypted_keys"`
	CreatedAt       time.Time `json:"created_at"`
	RootFingerprint string    `json:"root_fingerprint"` // hex SHA-256 of the root DER
	// Profiles overrides the built-in lifetimes per profile name.
	Profiles map[string]Lifetimes `json:"profiles,omitempty"`
}

// Validate returns every problem with s at once.
func (s Settings) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if s.Audience == "" {
		errs = append(errs, errors.New("audience is empty"))
	}
	if _, err := ParseKeyType(string(s.KeyType)); err != nil || s.KeyType == "" {
		errs = append(errs, fmt.Errorf("key_type %q is not a supported key type", s.KeyType))
	}
	if len(s.RootFingerprint) != 64 {
		errs = append(errs, errors.New("root_fingerprint must be 64 hex characters"))
	}
	builtin := builtinProfiles()
	for name, l := range s.Profiles {
		if _, ok := builtin[name]; !ok {
			errs = append(errs, fmt.Errorf("profiles.%s: %w", name, ErrUnknownProfile))
			continue
		}
		if err := l.validate(); err != nil {
			errs = append(errs, fmt.Errorf("profiles.%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (l Lifetimes) validate() error {
	var errs []error
	if l.Min <= 0 {
		errs = append(errs, errors.New("min must be positive"))
	}
	if l.Max < l.Min {
		errs = append(errs, fmt.Errorf("max %s is below min %s", time.Duration(l.Max), time.Duration(l.Min)))
	}
	if l.Default < l.Min || l.Default > l.Max {
		errs = append(errs, fmt.Errorf("default %s is outside [%s, %s]", time.Duration(l.Default), time.Duration(l.Min), time.Duration(l.Max)))
	}
	return errors.Join(errs...)
}

// ReadSettings reads and validates dir/ca.json. A missing file is reported
// as ErrNotInitialized with the command that fixes it.
func ReadSettings(dir string) (Settings, error) {
	path := filepath.Join(dir, SettingsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Settings{}, fmt.Errorf("%w: %s has no %s; create a CA with: leash ca init", ErrNotInitialized, dir, SettingsFile)
	}
	if err != nil {
		return Settings{}, fmt.Errorf("read CA settings: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Settings
	if err := dec.Decode(&s); err != nil {
		return Settings{}, fmt.Errorf("%s: %w", path, err)
	}
	if err := s.Validate(); err != nil {
		return Settings{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func writeSettings(dir string, s Settings) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode CA settings: %w", err)
	}
	return keyfile.WriteAtomic(filepath.Join(dir, SettingsFile), append(b, '\n'), 0o644)
}

// SetProfileLifetimes changes the lifetimes of one profile in dir/ca.json.
// It takes effect when the CA is next opened.
func SetProfileLifetimes(dir, profile string, l Lifetimes) error {
	s, err := ReadSettings(dir)
	if err != nil {
		return err
	}
	if s.Profiles == nil {
		s.Profiles = map[string]Lifetimes{}
	}
	s.Profiles[profile] = l
	if err := s.Validate(); err != nil {
		return err
	}
	return writeSettings(dir, s)
}
