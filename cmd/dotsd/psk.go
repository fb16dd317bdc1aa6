package main

import (
	"fmt"
	"path/filepath"

	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/pki"
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
// for domains(). Identities are unique over all domains; a key file is
// owner-only, in hex or base64, with at least 16 bytes (pki.LoadPSK).
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
			k, err := pki.LoadPSK(path)
			if err != nil {
				return bad(key+".key-file", "%v", err)
			}
			cl.psks = append(cl.psks, dotsserver.PSK{Identity: p.Identity, Key: k})
		}
	}
	return nil
}
