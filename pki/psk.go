package pki

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinPSKBytes is the shortest pre-shared key LoadPSK accepts (128 bits).
const MinPSKBytes = 16

// LoadPSK reads a pre-shared key written in hex or base64 (standard or URL
// alphabet, padded or not; hex is tried first) from a file that only its
// owner may read: a group- or world-readable key is refused. The key has
// at least MinPSKBytes bytes.
func LoadPSK(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %04o: a key file must be readable by its owner only (chmod 600 %s)", path, perm, path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := string(bytes.TrimSpace(raw))
	if text == "" {
		return nil, fmt.Errorf("%s is empty: write the key in hex or base64, e.g. openssl rand -hex 32", path)
	}
	k, err := decodePSK(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(k) < MinPSKBytes {
		return nil, fmt.Errorf("%s: the key has %d bytes, at least %d are required (e.g. openssl rand -hex 32)", path, len(k), MinPSKBytes)
	}
	return k, nil
}

func decodePSK(s string) ([]byte, error) {
	if k, err := hex.DecodeString(s); err == nil {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			return k, nil
		}
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return nil, errors.New("the key is neither hex nor base64 (it holds white space: write it on one line)")
	}
	return nil, errors.New("the key is neither hex nor base64")
}
