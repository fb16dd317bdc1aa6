package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/levee-dots/levee/dotsserver"
)

// pskConfig is one pre-shared key of a client domain (match.psk): the
// identity the client sends and the file that holds the key (RFC 9132 §7;
// DTLS only, see dotsserver/psk.go).
type pskConfig struct {
	Identity string `yaml:"identity"`
	KeyFile  string `yaml:"key-file"`
}

// loadPSKs reads the key files of every clients[].match.psk entry (paths
// relative to the configuration file's directory base) and keeps the keys
// for domains(). Identities are unique over all domains; a key has at
// least dotsserver.MinPSKBytes bytes.
func (c *fileConfig) loadPSKs(file, base string) error {
	bad := func(key, format string, args ...any) error {
		return &configError{file: file, key: key, problem: fmt.Sprintf(format, args...)}
	}
	seen := map[string]string{} // identity → its key path in the file
	for i := range c.Clients {
		cl := &c.Clients[i]
		cl.psks = nil
		for j, p := range cl.Match.PSK {
			key := fmt.Sprintf("clients[%d].match.psk[%d]", i, j)
			switch {
			case p.Identity == "":
				return bad(key+".identity", "a PSK needs the identity its client sends")
			case len(p.Identity) > dotsserver.MaxPSKIdentityBytes:
				return bad(key+".identity", "%q is longer than %d bytes", p.Identity, dotsserver.MaxPSKIdentityBytes)
			case p.KeyFile == "":
				return bad(key+".key-file", "the file of the key of PSK identity %q is required", p.Identity)
			}
			if prev, dup := seen[p.Identity]; dup {
				return bad(key+".identity", "%q is already the identity of %s: PSK identities must be unique", p.Identity, prev)
			}
			seen[p.Identity] = key
			path := p.KeyFile
			if !filepath.IsAbs(path) {
				path = filepath.Join(base, path)
			}
			k, err := readPSKFile(path)
			if err != nil {
				return bad(key+".key-file", "%v", err)
			}
			cl.psks = append(cl.psks, dotsserver.PSK{Identity: p.Identity, Key: k})
		}
	}
	return nil
}

// readPSKFile reads a key written in hex or base64 (standard or URL
// alphabet, padded or not; hex is tried first) in a file that only its
// owner may read: a group- or world-readable key is refused.
func readPSKFile(path string) ([]byte, error) {
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
	if len(k) < dotsserver.MinPSKBytes {
		return nil, fmt.Errorf("%s: the key has %d bytes, at least %d are required (e.g. openssl rand -hex 32)", path, len(k), dotsserver.MinPSKBytes)
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
