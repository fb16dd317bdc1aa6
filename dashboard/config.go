package dashboard

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
)

// Config is the dashboard section of dotsd.yaml. Nothing listens unless
// Listen is set.
type Config struct {
	// Listen is the address of the dashboard's HTTP listener, e.g.
	// 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token (one line, at least 16
	// characters); it must not be readable by group or others.
	TokenFile string `yaml:"token-file"`
	// ClientCA is a PEM file of the operator CA: with it, the listener
	// speaks TLS (with dotsd's server certificate) and a client
	// certificate from that CA is accepted instead of the token.
	ClientCA string `yaml:"client-ca"`
}

// Validate checks that an enabled dashboard has a way to authenticate.
func (c *Config) Validate() error {
	if c.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("dashboard.listen: %q is not host:port, e.g. 127.0.0.1:8080", c.Listen)
	}
	if c.TokenFile == "" && c.ClientCA == "" {
		return errors.New("dashboard: token-file or client-ca is required: the dashboard allows no anonymous access")
	}
	return nil
}

// minTokenLen is the shortest token accepted.
const minTokenLen = 16

// LoadToken reads a token file. It refuses a file that group or others
// may read (or write), and a token shorter than 16 characters.
func LoadToken(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dashboard.token-file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("dashboard.token-file: %s has mode %04o, readable beyond its owner: chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dashboard.token-file: %w", err)
	}
	tok := bytes.TrimSpace(b)
	if len(tok) < minTokenLen || bytes.ContainsAny(tok, " \t\r\n") {
		return nil, fmt.Errorf("dashboard.token-file: %s must hold one token of at least %d characters without spaces", path, minTokenLen)
	}
	return tok, nil
}
