package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/divert/dns"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// fileConfig is the dotsd YAML file. Relative paths are relative to the file.
type fileConfig struct {
	Signal struct {
		Listen           []string      `yaml:"listen"`
		UDPReceiveBuffer int           `yaml:"udp-receive-buffer"`
		NotifyInterval   time.Duration `yaml:"notify-interval"`
		ConfigMaxAge     uint32        `yaml:"config-max-age"`
	} `yaml:"signal"`
	TLS struct {
		Certificate string   `yaml:"certificate"`
		Key         string   `yaml:"key"`
		ClientCAs   []string `yaml:"client-cas"`
	} `yaml:"tls"`
	Store struct {
		Path string `yaml:"path"`
	} `yaml:"store"`
	Resolver struct {
		Servers []string      `yaml:"servers"`
		Timeout time.Duration `yaml:"timeout"`
	} `yaml:"resolver"`
	Policy struct {
		AllowIndefinite         *bool         `yaml:"allow-indefinite-lifetime"`
		MaxLifetime             time.Duration `yaml:"max-lifetime"`
		ActiveButTerminating    time.Duration `yaml:"active-but-terminating"`
		MaxActiveButTerminating time.Duration `yaml:"max-active-but-terminating"`
		RejectOtherClients      bool          `yaml:"reject-overlap-with-other-clients"`
		MaxRequestsPerClient    int           `yaml:"max-requests-per-client"`
	} `yaml:"policy"`
	// MemoryLimitMiB is a soft limit for the Go runtime (debug.SetMemoryLimit):
	// the collector works harder as the heap nears it. 0: none (GOMEMLIMIT
	// in the environment still applies).
	MemoryLimitMiB int64 `yaml:"memory-limit-mib"`
	Log            struct {
		Level  string `yaml:"level"`
		Format string `yaml:"format"`
	} `yaml:"log"`
	Clients []clientConfig `yaml:"clients"`
	Divert  struct {
		BGP *bgp.Config    `yaml:"bgp"`
		DNS *dnsFileConfig `yaml:"dns"`
	} `yaml:"divert"`
	dns   *dns.Config // built from Divert.DNS at load
	Admin struct {
		// Socket is the unix socket of the admin interface (dotsd bgp
		// neighbors); default: dotsd.sock beside the store.
		Socket string `yaml:"socket"`
	} `yaml:"admin"`
}

type clientConfig struct {
	Name     string   `yaml:"name"`
	Prefixes []string `yaml:"prefixes"`
	Match    struct {
		CommonNames []string `yaml:"common-names"`
		DNSNames    []string `yaml:"dns-names"`
		SPKIPins    []string `yaml:"spki-pins"`
	} `yaml:"match"`
}

// configError names the key at fault and says what to fix.
type configError struct {
	file, key, problem string
}

func (e *configError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.file, e.key, e.problem)
}

var unknownField = regexp.MustCompile(`line (\d+): field (\S+) not found in type`)

// loadConfig reads and validates a dotsd configuration file.
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
			return nil, fmt.Errorf("%s: the configuration is empty (see README for the keys)", path)
		}
		if m := unknownField.FindAllStringSubmatch(err.Error(), -1); m != nil {
			var parts []string
			for _, x := range m {
				parts = append(parts, fmt.Sprintf("unknown key %q at line %s", x[2], x[1]))
			}
			return nil, fmt.Errorf("%s: %s (check the spelling; see README for the keys)", path, strings.Join(parts, "; "))
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var extra any
	if err := dec.Decode(&extra); err == nil && extra != nil {
		return nil, fmt.Errorf("%s: more than one YAML document ('---'): put the whole configuration in one", path)
	}
	base := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	c.TLS.Certificate, c.TLS.Key, c.Store.Path = rel(c.TLS.Certificate), rel(c.TLS.Key), rel(c.Store.Path)
	for i := range c.TLS.ClientCAs {
		c.TLS.ClientCAs[i] = rel(c.TLS.ClientCAs[i])
	}
	c.Admin.Socket = rel(c.Admin.Socket)
	if c.Admin.Socket == "" && c.Store.Path != "" {
		c.Admin.Socket = filepath.Join(filepath.Dir(c.Store.Path), "dotsd.sock")
	}
	if c.Divert.DNS != nil {
		d, err := c.Divert.DNS.build(base)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		c.dns = &d
	}
	if err := c.validate(path); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *fileConfig) validate(file string) error {
	bad := func(key, format string, args ...any) error {
		return &configError{file: file, key: key, problem: fmt.Sprintf(format, args...)}
	}
	if len(c.Signal.Listen) == 0 {
		return bad("signal.listen", "at least one address:port is required, e.g. 127.0.0.1:4646")
	}
	for i, l := range c.Signal.Listen {
		if !isHostPort(l) {
			return bad(fmt.Sprintf("signal.listen[%d]", i), "%q is not host:port with a port 1-65535 (IPv6 as [::1]:4646)", l)
		}
	}
	if c.Signal.UDPReceiveBuffer < 0 {
		return bad("signal.udp-receive-buffer", "%d: must not be negative", c.Signal.UDPReceiveBuffer)
	}
	if c.Signal.NotifyInterval < 0 {
		return bad("signal.notify-interval", "%v: must not be negative", c.Signal.NotifyInterval)
	}
	if c.TLS.Certificate == "" {
		return bad("tls.certificate", "the server certificate file is required")
	}
	if c.TLS.Key == "" {
		return bad("tls.key", "the server private key file is required")
	}
	if len(c.TLS.ClientCAs) == 0 {
		return bad("tls.client-cas", "at least one CA file for client certificates is required")
	}
	if c.Store.Path == "" {
		return bad("store.path", "a database file path is required")
	}
	if c.MemoryLimitMiB < 0 {
		return bad("memory-limit-mib", "must not be negative")
	}
	for i, s := range c.Resolver.Servers {
		if !isHostPort(s) {
			return bad(fmt.Sprintf("resolver.servers[%d]", i), "%q is not host:port with a port 1-65535", s)
		}
	}
	if c.Resolver.Timeout < 0 {
		return bad("resolver.timeout", "%v: must not be negative", c.Resolver.Timeout)
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return bad("log.format", "%q: use text or json", c.Log.Format)
	}
	if c.Policy.MaxLifetime < 0 || c.Policy.ActiveButTerminating < 0 || c.Policy.MaxActiveButTerminating < 0 {
		return bad("policy", "durations must not be negative")
	}
	if len(c.Clients) == 0 {
		return bad("clients", "at least one client domain is required")
	}
	names := map[string]bool{}
	for i, cl := range c.Clients {
		key := fmt.Sprintf("clients[%d]", i)
		if cl.Name == "" {
			return bad(key+".name", "a client domain needs a name")
		}
		if names[cl.Name] {
			return bad(key+".name", "%q is used twice", cl.Name)
		}
		names[cl.Name] = true
		if len(cl.Prefixes) == 0 {
			return bad(key+".prefixes", "client %q owns no prefixes", cl.Name)
		}
		for j, p := range cl.Prefixes {
			if _, err := netip.ParsePrefix(p); err != nil {
				return bad(fmt.Sprintf("%s.prefixes[%d]", key, j), "%q is not a prefix like 203.0.113.0/24", p)
			}
		}
		if len(cl.Match.CommonNames)+len(cl.Match.DNSNames)+len(cl.Match.SPKIPins) == 0 {
			return bad(key+".match", "client %q needs common-names, dns-names or spki-pins to recognise its certificate", cl.Name)
		}
	}
	if b := c.Divert.BGP; b != nil {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		for name := range b.Domains {
			if !names[name] {
				return bad("divert.bgp.domains."+name, "no client domain is named %q", name)
			}
		}
	}
	return nil
}

// isHostPort reports whether s is host:port with a numeric port 1-65535
// (the host may be empty: all addresses).
func isHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}

func (c *fileConfig) domains() []*dotsserver.ClientDomain {
	var out []*dotsserver.ClientDomain
	for _, cl := range c.Clients {
		d := &dotsserver.ClientDomain{Name: cl.Name, CommonNames: cl.Match.CommonNames, DNSNames: cl.Match.DNSNames, SPKIPins: cl.Match.SPKIPins}
		for _, p := range cl.Prefixes {
			d.Prefixes = append(d.Prefixes, netip.MustParsePrefix(p).Masked())
		}
		out = append(out, d)
	}
	return out
}

func (c *fileConfig) policy() mitigation.Policy {
	p := mitigation.Policy{
		AllowIndefinite:          c.Policy.AllowIndefinite == nil || *c.Policy.AllowIndefinite,
		MaxLifetime:              c.Policy.MaxLifetime,
		Terminating:              c.Policy.ActiveButTerminating,
		MaxTerminating:           c.Policy.MaxActiveButTerminating,
		RejectOtherClientOverlap: c.Policy.RejectOtherClients,
		MaxPerClient:             c.Policy.MaxRequestsPerClient,
	}
	return p
}

// resolver returns the configured resolver, or nil for the system one.
func (c *fileConfig) resolver() dotsserver.Resolver {
	if len(c.Resolver.Servers) == 0 {
		return nil
	}
	servers := c.Resolver.Servers
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		var errs []error
		for _, s := range servers {
			conn, err := d.DialContext(ctx, network, s)
			if err == nil {
				return conn, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}}
}
