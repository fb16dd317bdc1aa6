package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// fileConfig is the scrubd YAML file. Relative paths are relative to the file.
type fileConfig struct {
	Listen string `yaml:"listen"`
	TLS    struct {
		Certificate string   `yaml:"certificate"`
		Key         string   `yaml:"key"`
		ClientCAs   []string `yaml:"client-cas"`
		// ClientNames, if set, are the subject CNs or DNS SANs of the
		// certificates that may program the node (dotsd's); a certificate
		// of the same CA with another name is refused with 403.
		ClientNames []string `yaml:"client-names"`
	} `yaml:"tls"`
	Interface string `yaml:"interface"`
	// NetNS is the network namespace of Interface: a name under /run/netns
	// or a path; empty: scrubd's own.
	NetNS string `yaml:"netns"`
	Table string `yaml:"table"`
	// NoTrack exempts the traffic to the targets from conntrack (an inet
	// table of the same name); default true: a scrubber sees one direction.
	NoTrack *bool `yaml:"notrack"`
	// KeepOnStop leaves the nftables table installed when scrubd stops
	// (a restart then never opens a window without filtering).
	KeepOnStop bool `yaml:"keep-on-stop"`
	Bounds     struct {
		MaxMitigations int   `yaml:"max-mitigations"`
		MaxRules       int   `yaml:"max-rules"`
		MaxTargets     int   `yaml:"max-targets"`
		MaxSources     int   `yaml:"max-sources"`
		MaxBodyBytes   int64 `yaml:"max-body-bytes"`
	} `yaml:"bounds"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
}

func loadConfig(path string) (*fileConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	var c fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: the configuration is empty", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	base := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	c.TLS.Certificate, c.TLS.Key = rel(c.TLS.Certificate), rel(c.TLS.Key)
	for i := range c.TLS.ClientCAs {
		c.TLS.ClientCAs[i] = rel(c.TLS.ClientCAs[i])
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func (c *fileConfig) validate() error {
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port (e.g. 192.0.2.5:4680)", c.Listen)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("listen: %q needs a port 1-65535", c.Listen)
	}
	switch {
	case c.TLS.Certificate == "":
		return errors.New("tls.certificate: the node's server certificate file is required")
	case c.TLS.Key == "":
		return errors.New("tls.key: the node's private key file is required")
	case len(c.TLS.ClientCAs) == 0:
		return errors.New("tls.client-cas: at least one CA file is required (the CA of dotsd's client certificate)")
	case c.Interface == "":
		return errors.New("interface: the ingress device of the attack traffic is required (e.g. eth0)")
	}
	for key, v := range map[string]int64{"bounds.max-mitigations": int64(c.Bounds.MaxMitigations), "bounds.max-rules": int64(c.Bounds.MaxRules),
		"bounds.max-targets": int64(c.Bounds.MaxTargets), "bounds.max-sources": int64(c.Bounds.MaxSources), "bounds.max-body-bytes": c.Bounds.MaxBodyBytes} {
		if v < 0 {
			return fmt.Errorf("%s: %d must not be negative (leave it out for the default)", key, v)
		}
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return fmt.Errorf("log.format: %q: use text or json", c.Log.Format)
	}
	return nil
}

// netnsPath is where the namespace named by netns is.
func netnsPath(netns string) string {
	if strings.Contains(netns, "/") {
		return netns
	}
	return filepath.Join("/run/netns", netns)
}
