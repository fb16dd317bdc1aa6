package main

import (
	"bytes"
	"cmp"
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

	"github.com/levee-dots/levee/dashboard"
	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/divert/dns"
	"github.com/levee-dots/levee/divert/scrub"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/escalate"
	"github.com/levee-dots/levee/resolve"
)

// fileConfig is the dotsd YAML file. Relative paths are relative to the file.
type fileConfig struct {
	Signal struct {
		Listen           []string      `yaml:"listen"`
		UDPReceiveBuffer int           `yaml:"udp-receive-buffer"`
		NotifyInterval   time.Duration `yaml:"notify-interval"`
		ConfigMaxAge     uint32        `yaml:"config-max-age"`
		// RedirectWhenSessionsOver sends the sessions beyond this number
		// to RedirectTo (RFC 9132 §4.6; redirect.go).
		RedirectWhenSessionsOver int             `yaml:"redirect-when-sessions-over"`
		RedirectTo               *redirectConfig `yaml:"redirect-to"`
	} `yaml:"signal"`
	Data dataConfig `yaml:"data"` // the RFC 8783 data channel (data.go)
	TLS  struct {
		Certificate string   `yaml:"certificate"`
		Key         string   `yaml:"key"`
		ClientCAs   []string `yaml:"client-cas"`
		// CRL lists certificate revocation lists of the client CAs (crl.go).
		CRL []string `yaml:"crl"`
		// KeyLog writes the secrets of every handshake to a file (keylog.go).
		KeyLog string `yaml:"key-log"`
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
		AllowChosenCUID         bool          `yaml:"allow-chosen-cuid"`
	} `yaml:"policy"`
	// Limits bound what one peer can make dotsd hold (limits.go).
	Limits limitsConfig `yaml:"limits"`
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
		BGP   *bgp.Config    `yaml:"bgp"`
		DNS   *dnsFileConfig `yaml:"dns"`
		Scrub *scrub.Config  `yaml:"scrub"`
	} `yaml:"divert"`
	// Escalation holds the escalation ladders by client domain: the
	// countermeasure of a request that names none, and when it moves to
	// the next (package escalate).
	Escalation map[string]escalate.Ladder `yaml:"escalation"`
	dns        *dns.Config                // built from Divert.DNS at load
	// Metrics serves Prometheus /metrics (metrics.go).
	Metrics metricsConfig `yaml:"metrics"`
	Admin   struct {
		// Socket is the unix socket of the admin interface (dotsd bgp
		// neighbors, dotsd dns conflicts); default: dotsd.sock beside the
		// store.
		Socket string `yaml:"socket"`
	} `yaml:"admin"`
	// Dashboard is the operators' web dashboard (dashboard.go); off
	// unless dashboard.listen is set.
	Dashboard dashboard.Config `yaml:"dashboard"`
	// dashboardBestEffort: a dashboard that cannot listen is logged, not
	// fatal (dotsd dev).
	dashboardBestEffort bool
	path                string // the file, read again on SIGHUP (reload.go)
	listenFlag          bool   // signal.listen comes from --signal-listen
}

type clientConfig struct {
	Name     string   `yaml:"name"`
	Prefixes []string `yaml:"prefixes"`
	Match    struct {
		CommonNames []string `yaml:"common-names"`
		DNSNames    []string `yaml:"dns-names"`
		SPKIPins    []string `yaml:"spki-pins"`
		// PSK lists pre-shared keys of clients without a certificate (psk.go).
		PSK []pskConfig `yaml:"psk"`
	} `yaml:"match"`
	// Limits is the domain's own request rate limit (limits_rate.go).
	Limits *rateConfig      `yaml:"limits"`
	psks   []dotsserver.PSK // read from Match.PSK's key files at load
}

// configError names the key at fault and says what to fix.
type configError struct {
	file, key, problem string
}

func (e *configError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.file, e.key, e.problem)
}

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
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var root yaml.Node
			_ = yaml.Unmarshal(raw, &root) // it parsed once already
			return nil, explainTypeError(path, &root, te)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var extra any
	if err := dec.Decode(&extra); err == nil && extra != nil {
		return nil, fmt.Errorf("%s: more than one YAML document ('---'): put the whole configuration in one", path)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkExplicitValues(path, &root); err != nil {
		return nil, err
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
	for i := range c.TLS.CRL {
		c.TLS.CRL[i] = rel(c.TLS.CRL[i])
	}
	c.Dashboard.TokenFile, c.Dashboard.ClientCA = rel(c.Dashboard.TokenFile), rel(c.Dashboard.ClientCA)
	c.Admin.Socket, c.TLS.KeyLog = rel(c.Admin.Socket), rel(c.TLS.KeyLog)
	if sc := c.Divert.Scrub; sc != nil {
		sc.Certificate, sc.Key = rel(sc.Certificate), rel(sc.Key)
		for i := range sc.Nodes {
			sc.Nodes[i].CA = rel(sc.Nodes[i].CA)
		}
	}
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
	if err := c.loadPSKs(path, base); err != nil {
		return nil, err
	}
	c.path = path
	return &c, nil
}

func (c *fileConfig) validate(file string) error {
	bad := func(key, format string, args ...any) error {
		return &configError{file: file, key: key, problem: fmt.Sprintf(format, args...)}
	}
	if err := c.Dashboard.Validate(); err != nil {
		return fmt.Errorf("%s: %w", file, err)
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
	if err := c.validateRedirect(bad); err != nil {
		return err
	}
	if err := c.validateData(bad); err != nil {
		return err
	}
	if err := c.Metrics.validate(bad); err != nil {
		return err
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
	for key, d := range map[string]time.Duration{"policy.max-lifetime": c.Policy.MaxLifetime,
		"policy.active-but-terminating": c.Policy.ActiveButTerminating, "policy.max-active-but-terminating": c.Policy.MaxActiveButTerminating} {
		if d < 0 {
			return bad(key, "%v: must not be negative", d)
		}
	}
	if p := c.policy(); p.Terminating > 0 || p.MaxTerminating > 0 {
		abt, maxABT := cmp.Or(p.Terminating, 120*time.Second), cmp.Or(p.MaxTerminating, 300*time.Second)
		if abt > maxABT {
			return bad("policy.max-active-but-terminating", "%v is less than policy.active-but-terminating %v: raise it, or lower active-but-terminating", maxABT, abt)
		}
	}
	if c.Policy.MaxRequestsPerClient < 0 {
		return bad("policy.max-requests-per-client", "%d: must not be negative", c.Policy.MaxRequestsPerClient)
	}
	if err := c.Limits.validate(bad); err != nil {
		return err
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
		if len(cl.Match.CommonNames)+len(cl.Match.DNSNames)+len(cl.Match.SPKIPins)+len(cl.Match.PSK) == 0 {
			return bad(key+".match", "client %q needs common-names, dns-names or spki-pins to recognise its certificate, or psk", cl.Name)
		}
		if r := cl.rateLimit(); r != nil {
			if err := validateRate(key+".limits", *r, bad); err != nil {
				return err
			}
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
	if sc := c.Divert.Scrub; sc != nil {
		if err := sc.Validate(); err != nil {
			return fmt.Errorf("%s: divert.%s", file, strings.Replace(err.Error(), "scrub: ", "scrub.", 1))
		}
		for i, name := range sc.Domains {
			if !names[name] {
				return bad(fmt.Sprintf("divert.scrub.domains[%d]", i), "no client domain is named %q", name)
			}
		}
	}
	return c.validateEscalation(file, names)
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
		d := &dotsserver.ClientDomain{Name: cl.Name, CommonNames: cl.Match.CommonNames, DNSNames: cl.Match.DNSNames, SPKIPins: cl.Match.SPKIPins,
			PSKs: cl.psks, RateLimit: cl.rateLimit()}
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
		AllowChosenCUID:          c.Policy.AllowChosenCUID,
	}
	return p
}

// resolver returns the configured resolver, or nil for the system one.
// resolver resolves target-fqdn and target-uri names with resolver.servers
// (none: the nameservers of /etc/resolv.conf), never counting an address
// that exclude tells (this server's own DNS diversion addresses).
func (c *fileConfig) resolver(exclude func(netip.Addr) bool) *resolve.Resolver {
	return resolve.New(resolve.Options{Servers: c.Resolver.Servers, Timeout: c.Resolver.Timeout, Exclude: exclude})
}

// yamlEntry is one value in the file and where it is: path is the key
// path ("clients[0].prefixes[1]"), pattern the same with list indices
// left out ("clients[].prefixes[]").
type yamlEntry struct {
	path, pattern string
	key, value    *yaml.Node // key is nil for a list item
}

// walkYAML calls fn for every value below n, parents first.
func walkYAML(n *yaml.Node, path, pattern string, fn func(yamlEntry)) {
	join := func(p, k string) string {
		if p == "" {
			return k
		}
		return p + "." + k
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkYAML(c, path, pattern, fn)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			e := yamlEntry{path: join(path, k.Value), pattern: join(pattern, k.Value), key: k, value: v}
			fn(e)
			walkYAML(v, e.path, e.pattern, fn)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			e := yamlEntry{path: fmt.Sprintf("%s[%d]", path, i), pattern: pattern + "[]", value: v}
			fn(e)
			walkYAML(v, e.path, e.pattern, fn)
		}
	}
}

var (
	typeErrorField     = regexp.MustCompile(`^line (\d+): field (\S+) not found in type`)
	typeErrorUnmarshal = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
)

// explainTypeError rewrites yaml.v3's "line 3: cannot unmarshal !!str `abc`
// into time.Duration" as "signal.notify-interval: "abc" is not a duration
// (e.g. 60s) (line 3)", finding the key from the line and the value.
func explainTypeError(file string, root *yaml.Node, te *yaml.TypeError) error {
	var parts []string
	unknown := false
	used := map[*yaml.Node]bool{} // one message per value, in order
	for _, msg := range te.Errors {
		if m := typeErrorField.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			key := m[2]
			walkYAML(root, "", "", func(e yamlEntry) {
				if e.key != nil && e.key.Line == line && e.key.Value == m[2] {
					key = e.path
				}
			})
			parts = append(parts, fmt.Sprintf("unknown key %q at line %d", key, line))
			unknown = true
			continue
		}
		m := typeErrorUnmarshal.FindStringSubmatch(msg)
		if m == nil {
			parts = append(parts, msg)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		tag, shown, goType := m[2], m[3], m[4]
		var found *yamlEntry
		walkYAML(root, "", "", func(e yamlEntry) {
			if found != nil || e.value.Line != line || used[e.value] {
				return
			}
			v := e.value
			switch {
			case tag == "seq" && v.Kind == yaml.SequenceNode, tag == "map" && v.Kind == yaml.MappingNode,
				v.Kind == yaml.ScalarNode && (v.Value == shown || strings.HasSuffix(shown, "...") && strings.HasPrefix(v.Value, strings.TrimSuffix(shown, "..."))):
				found = &e
			}
		})
		if found == nil {
			parts = append(parts, msg)
			continue
		}
		used[found.value] = true
		parts = append(parts, fmt.Sprintf("%s: %s (line %d)", found.path, wrongType(found.value, goType), line))
	}
	hint := ""
	if unknown {
		hint = " (check the spelling; see README for the keys)"
	}
	return fmt.Errorf("%s: %s%s", file, strings.Join(parts, "; "), hint)
}

// wrongType says why v cannot be a value of the Go type goType.
func wrongType(v *yaml.Node, goType string) string {
	got := fmt.Sprintf("%q", v.Value)
	switch v.Kind {
	case yaml.SequenceNode:
		got = "a list"
	case yaml.MappingNode:
		got = "a mapping"
	}
	goType = strings.TrimLeft(goType, "*")
	switch {
	case goType == "time.Duration":
		if _, err := strconv.ParseFloat(v.Value, 64); err == nil && v.Kind == yaml.ScalarNode {
			return fmt.Sprintf("%s is not a duration (e.g. 60s): a number needs a unit, as in %ss", got, v.Value)
		}
		return got + " is not a duration (e.g. 60s)"
	case goType == "bool":
		return got + " is not true or false"
	case goType == "string":
		return got + " where a single value is expected"
	case strings.HasPrefix(goType, "[]"):
		return got + " where a list is expected (e.g. [a, b])"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"), strings.HasPrefix(goType, "main."), strings.Contains(goType, "."):
		return got + " where a mapping of keys is expected (see README)"
	case strings.HasPrefix(goType, "uint"):
		bits, _ := strconv.Atoi(strings.TrimPrefix(goType, "uint"))
		if bits == 0 {
			bits = 64
		}
		return fmt.Sprintf("%s is not a whole number from 0 to %d", got, uint64(1)<<bits-1)
	case strings.HasPrefix(goType, "int"):
		return got + " is not a whole number"
	}
	return fmt.Sprintf("%s cannot be read as %s", got, goType)
}

// explicitKeys are keys whose zero value means "the default" in the Go
// configuration: written in the file as 0 (or with no value) they would be
// silently replaced, so the file is refused instead. The value says what to
// write.
var explicitKeys = map[string]string{
	"signal.notify-interval":            "must be positive; leave the key out for the default 60s",
	"signal.config-max-age":             "must be at least 1 (seconds); leave the key out for the default 3600",
	"signal.udp-receive-buffer":         "must be positive (bytes); leave the key out for the default 8388608",
	"resolver.timeout":                  "must be positive; leave the key out for the default 2s",
	"policy.active-but-terminating":     "must be positive; leave the key out for the default 120s",
	"policy.max-active-but-terminating": "must be positive; leave the key out for the default 300s",
	"policy.max-requests-per-client":    "must be at least 1; leave the key out for the default 1024",
	"divert.dns.ttl":                    "must be at least 1 (seconds); leave the key out for the default 30",
	"divert.dns.timeout":                "must be positive; leave the key out for the default 5s",
	"divert.dns.retries":                "would mean the default 3; write -1 for no retry, or leave the key out",
	"divert.dns.backoff":                "must be positive; leave the key out for the default 500ms",
	"divert.scrub.poll-interval":        "must be positive; leave the key out for the default 5s",
	"divert.scrub.timeout":              "must be positive; leave the key out for the default 10s",

	"signal.redirect-when-sessions-over": "must be at least 1; leave the key out to redirect no session",
	"signal.redirect-to.ttl":             "must be at least 1s; leave the key out for the default 1h",

	"divert.bgp.min-prefix-length-v4":          "must be 1-32; leave the key out for the default 24",
	"divert.bgp.min-prefix-length-v6":          "must be 1-128; leave the key out for the default 48",
	"divert.bgp.max-routes-per-domain":         "must be at least 1; leave the key out for the default 256",
	"divert.bgp.graceful-restart.restart-time": "must be at least 1 (seconds); leave the key out for the default 120",
	"divert.bgp.neighbors[].port":              "must be 1-65535; leave the key out for the default 179",
	"divert.bgp.neighbors[].flowspec-budget":   "must be at least 1; leave flowspec out of receives to send no FlowSpec rule, or the key out for the default 1000",
}

// refusedKeys are keys of the Go configuration types that dotsd does not
// accept in the file, with what to do instead.
var refusedKeys = map[string]string{}

// checkExplicitValues refuses explicitKeys written as zero or without a
// value, and refusedKeys.
func checkExplicitValues(file string, root *yaml.Node) error {
	var err error
	walkYAML(root, "", "", func(e yamlEntry) {
		if err != nil {
			return
		}
		if why, ok := refusedKeys[e.pattern]; ok {
			err = fmt.Errorf("%s: unknown key %q at line %d: %s", file, e.path, e.key.Line, why)
			return
		}
		why, ok := explicitKeys[e.pattern]
		if !ok {
			why, ok = limitsExplicitKeys[e.pattern]
		}
		if !ok || e.value.Kind != yaml.ScalarNode {
			return
		}
		v := e.value
		if v.Tag == "!!null" {
			err = &configError{file: file, key: e.path, problem: "no value (line " + strconv.Itoa(v.Line) + "); " + why}
			return
		}
		d, derr := time.ParseDuration(v.Value)
		f, ferr := strconv.ParseFloat(v.Value, 64)
		if derr == nil && d == 0 || ferr == nil && f == 0 {
			err = &configError{file: file, key: e.path, problem: fmt.Sprintf("%q: %s (line %d)", v.Value, why, v.Line)}
		}
	})
	return err
}
