package pki

import (
	"fmt"
	"os"
	"sync"
)

// KeyLog is a TLS key log file (SSLKEYLOGFILE, the NSS key log format)
// that Wireshark reads to decrypt captured DTLS and TLS sessions: one line
// per secret, "LABEL CLIENT_RANDOM SECRET" in hex. Whoever reads it can
// decrypt every session it names, so it is opened for its owner only.
// Writes of concurrent handshakes are serialised, a line each.
type KeyLog struct {
	mu sync.Mutex
	f  *os.File
}

// OpenKeyLog opens path for appending, creating it with mode 0600; an
// existing file is set to 0600 as well.
func OpenKeyLog(path string) (*KeyLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("key log: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("key log: %w", err)
	}
	return &KeyLog{f: f}, nil
}

// Write appends p, one key log line as crypto/tls and pion/dtls write them.
func (k *KeyLog) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.f.Write(p)
}

// Close closes the file.
func (k *KeyLog) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.f.Close()
}

// Path is the file's name.
func (k *KeyLog) Path() string { return k.f.Name() }
