package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/pki"
)

// ctlConfig is the dotsctl YAML file; relative paths are relative to it.
type ctlConfig struct {
	Servers     []string `yaml:"servers"`
	Certificate string   `yaml:"certificate"`
	Key         string   `yaml:"key"`
	CA          string   `yaml:"ca"`
	ServerName  string   `yaml:"server-name"`
	Transport   string   `yaml:"transport"` // auto, dtls or tls
	// ParallelRequests is how many requests a session has outstanding at
	// once (dotsclient.Config.ParallelRequests): 1, RFC 7252's NSTART, if
	// left out.
	ParallelRequests int    `yaml:"parallel-requests"`
	State            string `yaml:"state"` // mid counter and cuid file
	CUID             string `yaml:"cuid"`  // instead of the derived one
	// HeavyLoss (dotsclient.Config.HeavyLoss, off by default) is for
	// one-shot commands through a link that loses most packets: a shorter
	// DTLS handshake timer, each datagram sent twice within a budget, and
	// requests repeated after 500 ms without a round-trip estimate.
	// --heavy-loss sets it for one command.
	HeavyLoss bool `yaml:"heavy-loss"`
	// PSK, instead of certificate and key, authenticates with a
	// pre-shared key (DTLS only; RFC 9132 §7).
	PSK *ctlPSK `yaml:"psk"`
	// DataChannel is the server's RFC 8783 data channel, https://HOST:PORT.
	DataChannel string `yaml:"data-channel"`
	// KeyLog writes the secrets of every handshake to a file, for
	// Wireshark (keylog.go); SSLKEYLOGFILE does the same.
	KeyLog string `yaml:"key-log"`
}

// ctlPSK is the client's PSK identity and the file of its key (hex or
// base64, readable by its owner only).
type ctlPSK struct {
	Identity string `yaml:"identity"`
	KeyFile  string `yaml:"key-file"`
}

func loadCtlConfig(path string) (*ctlConfig, error) {
	if path == "" {
		return nil, errors.New("no configuration: pass --config FILE or set DOTSCTL_CONFIG (dotsd dev writes one per client under DIR/clients/NAME/dotsctl.yaml)")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	var c ctlConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	base := filepath.Dir(path)
	paths := []*string{&c.Certificate, &c.Key, &c.CA, &c.State, &c.KeyLog}
	if c.PSK != nil {
		paths = append(paths, &c.PSK.KeyFile)
	}
	for _, p := range paths {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	if len(c.Servers) == 0 {
		return nil, fmt.Errorf("%s: servers: list at least one server as host:port", path)
	}
	if err := c.checkCredentials(path); err != nil {
		return nil, err
	}
	switch c.Transport {
	case "", "auto", "dtls", "tls":
	default:
		return nil, fmt.Errorf("%s: transport: %q, use auto, dtls or tls", path, c.Transport)
	}
	if c.ParallelRequests < 0 || c.ParallelRequests > dotsclient.MaxParallelRequests {
		return nil, fmt.Errorf("%s: parallel-requests: %d, use 1 to %d (leave it out for 1, RFC 7252's NSTART)", path, c.ParallelRequests, dotsclient.MaxParallelRequests)
	}
	if c.State == "" {
		c.State = filepath.Join(base, "state.json")
	}
	return &c, nil
}

// checkCredentials wants a certificate, its key and the CA, or a PSK
// (identity and key file) instead; a PSK session is DTLS only.
func (c *ctlConfig) checkCredentials(path string) error {
	if p := c.PSK; p != nil {
		switch {
		case c.Certificate != "" || c.Key != "":
			return fmt.Errorf("%s: psk: configure certificate and key, or psk, not both", path)
		case p.Identity == "" || p.KeyFile == "":
			return fmt.Errorf("%s: psk: identity and key-file are required", path)
		case c.Transport == "tls":
			return fmt.Errorf("%s: transport: tls does not work with psk (Go's TLS has no external PSKs): use dtls or auto", path)
		}
		return nil
	}
	switch {
	case c.Certificate == "" || c.Key == "":
		return fmt.Errorf("%s: certificate and key: the client certificate files (or psk) are required", path)
	case c.CA == "":
		return fmt.Errorf("%s: ca: the CA file that signed the server certificate is required", path)
	}
	return nil
}

// pskClientConfig is clientConfig for a PSK client: the key file is read,
// and the cuid derived from the identity.
func (c *ctlConfig) pskClientConfig() (dotsclient.Config, error) {
	key, err := pki.LoadPSK(c.PSK.KeyFile)
	if err != nil {
		return dotsclient.Config{}, fmt.Errorf("psk: %w", err)
	}
	cuid, err := c.cuidFor(dotsclient.PSKCUID(c.PSK.Identity))
	if err != nil {
		return dotsclient.Config{}, err
	}
	return dotsclient.Config{Servers: c.Servers, PSK: &dotsclient.PSK{Identity: c.PSK.Identity, Key: key},
		ServerName: c.ServerName, Transport: c.Transport, CUID: cuid, OnCUIDChange: c.keepCUID, ParallelRequests: c.ParallelRequests,
		HeavyLoss: c.HeavyLoss}, nil
}

func (c *ctlConfig) clientConfig() (dotsclient.Config, error) {
	cc, err := c.credentialConfig()
	if err != nil {
		return cc, err
	}
	cc.KeyLogWriter, err = c.keyLog()
	return cc, err
}

func (c *ctlConfig) credentialConfig() (dotsclient.Config, error) {
	if c.PSK != nil {
		return c.pskClientConfig()
	}
	cert, leaf, err := pki.LoadKeyPair(c.Certificate, c.Key)
	if err != nil {
		return dotsclient.Config{}, err
	}
	roots, err := pki.LoadCertPool(c.CA)
	if err != nil {
		return dotsclient.Config{}, err
	}
	cuid, err := c.cuid(leaf.RawSubjectPublicKeyInfo)
	if err != nil {
		return dotsclient.Config{}, err
	}
	return dotsclient.Config{Servers: c.Servers, Certificate: cert, RootCAs: roots, ServerName: c.ServerName,
		Transport: c.Transport, CUID: cuid, OnCUIDChange: c.keepCUID, ParallelRequests: c.ParallelRequests, HeavyLoss: c.HeavyLoss}, nil
}

// cuid is the cuid to speak as: the one the state file keeps since a cuid
// collision on the configured (or derived) one, else the configured one,
// else "" (the derived one).
func (c *ctlConfig) cuid(spki []byte) (string, error) {
	return c.cuidFor(dots.CUIDFromSPKI(spki))
}

// cuidFor is cuid with the derived cuid given.
func (c *ctlConfig) cuidFor(derived string) (string, error) {
	st, err := readState(c.State)
	if err != nil {
		return "", err
	}
	was := c.CUID
	if was == "" {
		was = derived
	}
	if st.CUID != "" && st.CUIDReplaces == was {
		return st.CUID, nil
	}
	return c.CUID, nil
}

// keepCUID records in the state file the cuid made after a collision on
// old (RFC 9132 §4.4.1), used from then on instead of old.
func (c *ctlConfig) keepCUID(old, cuid string) error {
	heldMu.Lock()
	defer heldMu.Unlock()
	if st := held[c.State]; st != nil {
		st.CUID, st.CUIDReplaces = cuid, old
		return nil
	}
	return updateState(c.State, func(st *ctlState) error {
		st.CUID, st.CUIDReplaces = cuid, old
		return nil
	})
}

// midRollover is 3/4 of 2^32-1 (RFC 9132 §4.4.1): once a mid has reached
// it, mids restart at 0 (when no attack mitigation is active).
const midRollover = dotsclient.MIDRollover

// ctlState is dotsctl's state file: the mid counter, and the cuid made
// after a cuid collision with the cuid it replaces.
type ctlState struct {
	NextMID      *uint64 `json:"next_mid,omitempty"` // absent: 1
	CUID         string  `json:"cuid,omitempty"`
	CUIDReplaces string  `json:"cuid_replaces,omitempty"`
}

func readState(path string) (ctlState, error) {
	var st ctlState
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
		return st, nil
	case err != nil:
		return st, fmt.Errorf("state file: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state file %s is corrupt (%v): fix or remove it", path, err)
	}
	return st, nil
}

// updateState changes the state file under a file lock, so concurrent
// dotsctl runs never reuse a mid or lose a cuid.
func updateState(path string, fn func(*ctlState) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("state file lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	st, err := readState(path)
	if err != nil {
		return err
	}
	if err := fn(&st); err != nil {
		return err
	}
	b, _ := json.Marshal(st)
	if err := pki.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// rolloverFunc restarts mids at first when it may (dotsclient.Rollover)
// and returns the next free mid; st is the state, locked, as it is read.
type rolloverFunc func(first uint32, st *ctlState) (next uint32, ok bool, err error)

// held are the states whose file this process has locked, by path, during
// nextMID's rollover: a new cuid made meanwhile goes there, not through the
// lock, which the same process cannot take twice (flock(2) locks are per
// open file, and the agent's session has a ctlConfig of its own).
var (
	heldMu sync.Mutex
	held   = map[string]*ctlState{}
)

// rollover is dotsclient.Rollover for nextMID: a cuid collision meanwhile
// keeps the new cuid in the locked state.
func (c *ctlConfig) rollover(ctx context.Context, cl *dotsclient.Client) rolloverFunc {
	return func(first uint32, st *ctlState) (uint32, bool, error) {
		heldMu.Lock()
		held[c.State] = st
		heldMu.Unlock()
		defer func() {
			heldMu.Lock()
			delete(held, c.State)
			heldMu.Unlock()
		}()
		return cl.Rollover(ctx, first)
	}
}

// nextMID returns a fresh mid and persists the counter. Once the last mid
// handed out has reached midRollover, rollover is asked to restart the
// mids at 0 (RFC 9132 §4.4.1); while it may not (an attack mitigation is
// active, or rollover is nil), the counter goes on.
func nextMID(path string, rollover rolloverFunc) (uint32, error) {
	var mid uint32
	var rollErr error
	err := updateState(path, func(st *ctlState) error {
		next := uint64(1)
		if st.NextMID != nil {
			next = *st.NextMID
		}
		if next > uint64(midRollover) && rollover != nil {
			n, ok, err := rollover(0, st)
			if err != nil {
				rollErr = err // the state is written all the same: it may hold a new cuid
				return nil
			}
			if ok {
				next = uint64(n)
			}
		}
		if next > math.MaxUint32 {
			return errors.New("every mid up to 2^32-1 is used and an attack mitigation is still active: withdraw it, and the mids restart at 0")
		}
		mid = uint32(next)
		next++
		st.NextMID = &next
		return nil
	})
	if err == nil {
		err = rollErr
	}
	if err != nil {
		return 0, fmt.Errorf("mid counter: %w", err)
	}
	return mid, nil
}
