package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/levee-dots/levee/pki"
)

// keyLogs are the key log files opened by this process, by path: an agent
// dials again and again, each dial appends to the same file.
var keyLogs struct {
	mu    sync.Mutex
	files map[string]*pki.KeyLog
}

// keyLogPath is the key log of a configuration: its key-log key, else the
// SSLKEYLOGFILE environment variable; "" for none.
func (c *ctlConfig) keyLogPath() string {
	if c.KeyLog != "" {
		return c.KeyLog
	}
	return os.Getenv("SSLKEYLOGFILE")
}

// keyLog opens (once per process) the key log of c and says on stderr
// that it is on; nil without one.
func (c *ctlConfig) keyLog() (io.Writer, error) {
	path := c.keyLogPath()
	if path == "" {
		return nil, nil
	}
	keyLogs.mu.Lock()
	defer keyLogs.mu.Unlock()
	if k := keyLogs.files[path]; k != nil {
		return k, nil
	}
	k, err := pki.OpenKeyLog(path)
	if err != nil {
		return nil, fmt.Errorf("key-log (or SSLKEYLOGFILE): %w: name a file you may write, or leave both unset", err)
	}
	if keyLogs.files == nil {
		keyLogs.files = map[string]*pki.KeyLog{}
	}
	keyLogs.files[path] = k
	fmt.Fprintf(os.Stderr, "dotsctl: WARNING: TLS key log on: the secrets of every DTLS and TLS session are written to %s; whoever reads it can decrypt them\n", path)
	return k, nil
}
