package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/levee-dots/levee/scrub"
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
	// KeepOnStop leaves the nftables table and the return path installed
	// when scrubd stops (a restart then never opens a window without
	// filtering or without a way back).
	KeepOnStop bool `yaml:"keep-on-stop"`
	// Return, if present, makes scrubd set up the return path of cleaned
	// traffic (scrub.Return); absent, the operator routes it.
	Return *returnConfig `yaml:"return"`
	Bounds struct {
		MaxMitigations int `yaml:"max-mitigations"`
		MaxRules       int `yaml:"max-rules"`
		MaxTargets     int `yaml:"max-targets"`
		// MaxMitigationTargets bounds the prefixes of one mitigation
		// (MaxTargets bounds them over all mitigations).
		MaxMitigationTargets int   `yaml:"max-targets-per-mitigation"`
		MaxSources           int   `yaml:"max-sources"`
		MaxBodyBytes         int64 `yaml:"max-body-bytes"`
	} `yaml:"bounds"`
	Log struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	// Metrics serves Prometheus /metrics (metrics.go).
	Metrics metricsConfig `yaml:"metrics"`

	ret *scrub.ReturnOptions // Return, parsed and checked
}

// returnConfig is the "return:" section; see scrub.ReturnOptions.
type returnConfig struct {
	Tunnel       string `yaml:"tunnel"`
	Name         string `yaml:"name"`
	Local        string `yaml:"local"`
	Remote       string `yaml:"remote"`
	VNI          int64  `yaml:"vni"`
	Port         int64  `yaml:"port"`
	Address      string `yaml:"address"`
	Gateway      string `yaml:"gateway"`
	Gateway6     string `yaml:"gateway6"`
	Address6     string `yaml:"address6"`
	Table        int64  `yaml:"table"`
	RulePriority int64  `yaml:"rule-priority"`
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
		"bounds.max-targets":                int64(c.Bounds.MaxTargets),
		"bounds.max-targets-per-mitigation": int64(c.Bounds.MaxMitigationTargets), "bounds.max-sources": int64(c.Bounds.MaxSources), "bounds.max-body-bytes": c.Bounds.MaxBodyBytes} {
		if v < 0 {
			return fmt.Errorf("%s: %d must not be negative (leave it out for the default)", key, v)
		}
	}
	if c.Return != nil {
		o, err := c.Return.options(c.Interface)
		if err != nil {
			return err
		}
		c.ret = &o
	}
	if err := c.Metrics.validate(); err != nil {
		return err
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

// options parses the section into scrub.ReturnOptions and checks them;
// errors name the key ("return.gateway: ...").
func (rc *returnConfig) options(iface string) (scrub.ReturnOptions, error) {
	o := scrub.ReturnOptions{Interface: iface, Tunnel: rc.Tunnel, Name: rc.Name}
	var err error
	for _, a := range []struct {
		key, s string
		dst    *netip.Addr
	}{{"local", rc.Local, &o.Local}, {"remote", rc.Remote, &o.Remote},
		{"gateway", rc.Gateway, &o.Gateway}, {"gateway6", rc.Gateway6, &o.Gateway6}} {
		if a.s == "" {
			continue
		}
		if *a.dst, err = netip.ParseAddr(a.s); err != nil {
			return o, fmt.Errorf("return.%s: %q is not an IP address", a.key, a.s)
		}
	}
	for _, p := range []struct {
		key, s, eg string
		dst        *netip.Prefix
	}{{"address", rc.Address, "192.0.2.13/30", &o.Address}, {"address6", rc.Address6, "2001:db8:ff::1/64", &o.Address6}} {
		if p.s == "" {
			continue
		}
		if *p.dst, err = netip.ParsePrefix(p.s); err != nil {
			return o, fmt.Errorf("return.%s: %q is not an address with its prefix length (e.g. %s)", p.key, p.s, p.eg)
		}
	}
	for _, n := range []struct {
		key      string
		v, limit int64
	}{{"vni", rc.VNI, 1<<24 - 1}, {"port", rc.Port, 65535}, {"table", rc.Table, 1<<32 - 1}, {"rule-priority", rc.RulePriority, 32765}} {
		if n.v < 0 || n.v > n.limit {
			return o, fmt.Errorf("return.%s: %d is out of range (at most %d)", n.key, n.v, n.limit)
		}
	}
	o.VNI, o.Port, o.Table, o.RulePriority = uint32(rc.VNI), uint16(rc.Port), int(rc.Table), int(rc.RulePriority)
	if err := o.Validate(); err != nil {
		var oe *scrub.OptionError
		if errors.As(err, &oe) {
			return o, fmt.Errorf("return.%s: %s", oe.Key, oe.Msg)
		}
		return o, fmt.Errorf("return: %w", err)
	}
	if o.Tunnel == "" {
		o.Tunnel = scrub.TunnelAuto
	}
	if o.Port == 0 && o.Tunnel != scrub.TunnelGRE {
		o.Port = scrub.DefaultVXLANPort
	}
	if o.Table == 0 {
		o.Table = scrub.DefaultReturnTable
	}
	if o.RulePriority == 0 {
		o.RulePriority = scrub.DefaultRulePriority
	}
	return o, nil
}
