package leashtls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/leashpki/leash/internal/keyfile"
)

// DefaultPollInterval is how often FileSource.Run looks at its files unless
// WithPollInterval says otherwise.
const DefaultPollInterval = 5 * time.Second

// FileSource is a Source fed from a certificate file and a key file. It
// loads them once when created; Run then polls them and swaps in a new pair
// as soon as their content changes, whatever the modification times say.
// A pair that does not load (half written, mismatched, garbage, a key file
// with loose permissions) is logged and ignored: the previous certificate
// keeps being served until a good pair appears.
type FileSource struct {
	*Source

	certFile, keyFile string
	interval          time.Duration
	logger            *slog.Logger
	onReload          func(*tls.Certificate)

	mu  sync.Mutex        // serializes reloads
	sum [sha256.Size]byte // digest of the file contents being served
}

// FileOption configures a FileSource.
type FileOption func(*fileOptions)

type fileOptions struct {
	interval time.Duration
	logger   *slog.Logger
	onReload func(*tls.Certificate)
}

// WithPollInterval sets how often Run reads the files; it must be positive.
func WithPollInterval(d time.Duration) FileOption {
	return func(o *fileOptions) { o.interval = d }
}

// WithLogger sets the logger for reloads and reload failures; without it
// nothing is logged.
func WithLogger(l *slog.Logger) FileOption {
	return func(o *fileOptions) { o.logger = l }
}

// WithOnReload registers fn to be called with every certificate that a
// reload puts into service (not with the one loaded by NewFileSource).
// Reloads are serialized and fn runs inside one, so it sees certificates in
// order; it must not call Reload.
func WithOnReload(fn func(*tls.Certificate)) FileOption {
	return func(o *fileOptions) { o.onReload = fn }
}

// NewFileSource loads certFile and keyFile (see LoadKeyPair) and returns a
// FileSource serving them. Call Run to follow later changes.
func NewFileSource(certFile, keyFile string, opts ...FileOption) (*FileSource, error) {
	o := fileOptions{interval: DefaultPollInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if o.interval <= 0 {
		return nil, fmt.Errorf("%w: poll interval %s must be positive", ErrInvalidConfig, o.interval)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	f := &FileSource{
		certFile: certFile,
		keyFile:  keyFile,
		interval: o.interval,
		logger:   o.logger,
		onReload: o.onReload,
	}
	cert, sum, err := f.read()
	if err != nil {
		return nil, err
	}
	if f.Source, err = NewSource(cert); err != nil {
		return nil, err
	}
	f.sum = sum
	return f, nil
}

// Run polls the files every interval until ctx is cancelled, then returns
// nil. Failed reloads are logged once per distinct error, not once per poll.
func (f *FileSource) Run(ctx context.Context) error {
	ticker := time.NewTicker(f.interval)
	defer ticker.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		err := f.reload(false)
		if err == nil {
			lastErr = ""
			continue
		}
		if msg := err.Error(); msg != lastErr {
			lastErr = msg
			f.logger.Error("tls certificate reload failed; still serving the previous certificate",
				"cert_file", f.certFile, "key_file", f.keyFile, "serving_serial", f.serial(), "err", err)
		}
	}
}

// Reload reads both files now and serves them if they load, even when their
// content is unchanged. On error the previous certificate stays.
func (f *FileSource) Reload() error {
	return f.reload(true)
}

func (f *FileSource) reload(force bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	certPEM, keyPEM, err := f.readFiles()
	if err != nil {
		return err
	}
	sum := digest(certPEM, keyPEM)
	if !force && sum == f.sum {
		return nil
	}
	cert, err := parseKeyPair(f.certFile, f.keyFile, certPEM, keyPEM)
	if err != nil {
		return err
	}
	if err := f.Store(cert); err != nil {
		return fmt.Errorf("key pair %s, %s: %w", f.certFile, f.keyFile, err)
	}
	f.sum = sum
	f.logger.Info("tls certificate reloaded", "cert_file", f.certFile, "serial", cert.Leaf.SerialNumber.String(),
		"not_after", cert.Leaf.NotAfter)
	if f.onReload != nil {
		f.onReload(cert)
	}
	return nil
}

func (f *FileSource) read() (*tls.Certificate, [sha256.Size]byte, error) {
	certPEM, keyPEM, err := f.readFiles()
	if err != nil {
		return nil, [sha256.Size]byte{}, err
	}
	cert, err := parseKeyPair(f.certFile, f.keyFile, certPEM, keyPEM)
	if err != nil {
		return nil, [sha256.Size]byte{}, err
	}
	return cert, digest(certPEM, keyPEM), nil
}

func (f *FileSource) readFiles() (certPEM, keyPEM []byte, err error) {
	certPEM, err = os.ReadFile(f.certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate file: %w", err)
	}
	keyPEM, err = keyfile.ReadPrivate(f.keyFile)
	if err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

func (f *FileSource) serial() string {
	if c := f.Load(); c != nil {
		return c.Leaf.SerialNumber.String()
	}
	return ""
}

// digest identifies a pair of file contents; the length prefix keeps bytes
// from moving between the two files unnoticed.
func digest(certPEM, keyPEM []byte) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(certPEM)))
	h.Write(n[:])
	h.Write(certPEM)
	h.Write(keyPEM)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
