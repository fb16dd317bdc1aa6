package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"gopkg.in/yaml.v3"

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
	State       string   `yaml:"state"`     // mid counter file
	CUID        string   `yaml:"cuid"`      // only after a cuid collision
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
	for _, p := range []*string{&c.Certificate, &c.Key, &c.CA, &c.State} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	switch {
	case len(c.Servers) == 0:
		return nil, fmt.Errorf("%s: servers: list at least one server as host:port", path)
	case c.Certificate == "" || c.Key == "":
		return nil, fmt.Errorf("%s: certificate and key: the client certificate files are required", path)
	case c.CA == "":
		return nil, fmt.Errorf("%s: ca: the CA file that signed the server certificate is required", path)
	}
	switch c.Transport {
	case "", "auto", "dtls", "tls":
	default:
		return nil, fmt.Errorf("%s: transport: %q, use auto, dtls or tls", path, c.Transport)
	}
	if c.State == "" {
		c.State = filepath.Join(base, "state.json")
	}
	return &c, nil
}

func (c *ctlConfig) clientConfig() (dotsclient.Config, error) {
	cert, _, err := pki.LoadKeyPair(c.Certificate, c.Key)
	if err != nil {
		return dotsclient.Config{}, err
	}
	roots, err := pki.LoadCertPool(c.CA)
	if err != nil {
		return dotsclient.Config{}, err
	}
	return dotsclient.Config{Servers: c.Servers, Certificate: cert, RootCAs: roots, ServerName: c.ServerName,
		Transport: c.Transport, CUID: c.CUID}, nil
}

// midRollover is 3/4 of 2^32-1 (RFC 9132 §4.4.1): past it mids restart at 0.
const midRollover = 3221225471

type ctlState struct {
	NextMID uint32 `json:"next_mid"`
}

// nextMID returns a fresh mid and persists the counter (under a file lock,
// so concurrent dotsctl runs never reuse a mid).
func nextMID(path string) (uint32, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return 0, err
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return 0, fmt.Errorf("mid counter: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return 0, fmt.Errorf("mid counter lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	var st ctlState
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			return 0, fmt.Errorf("mid counter %s is corrupt (%v): fix or remove it", path, err)
		}
	} else if !os.IsNotExist(err) {
		return 0, fmt.Errorf("mid counter: %w", err)
	}
	if st.NextMID == 0 {
		st.NextMID = 1
	}
	mid := st.NextMID
	st.NextMID++
	if st.NextMID > midRollover {
		st.NextMID = 1
	}
	b, _ := json.Marshal(st)
	if err := pki.WriteFile(path, b, 0o600); err != nil {
		return 0, fmt.Errorf("mid counter: %w", err)
	}
	return mid, nil
}
