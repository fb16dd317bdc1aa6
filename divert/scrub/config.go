package scrub

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Defaults applied to zero fields of Config.
const (
	DefaultPollInterval = 5 * time.Second
	DefaultTimeout      = 10 * time.Second
)

// Config configures the scrubbing backend (dotsd: divert.scrub). Paths are
// used as given (cmd/dotsd makes them relative to its file).
type Config struct {
	// Domains are the client domains whose mitigations are scrubbed.
	Domains []string `yaml:"domains"`
	// Nodes are the scrubbing nodes; each gets the complete state.
	Nodes []NodeConfig `yaml:"nodes"`
	// Certificate and Key are dotsd's client certificate toward the nodes
	// (a certificate for client authentication, issued by a CA in the
	// nodes' tls.client-cas).
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
	// PollInterval is how often counters are read (default 5 s).
	PollInterval time.Duration `yaml:"poll-interval"`
	// Timeout bounds one request to a node (default 10 s).
	Timeout time.Duration `yaml:"timeout"`
	// Names is what the nodes do with the addresses that came from
	// resolving names when the scope names no port and no protocol:
	// NamesScrubOnlyNamedPorts (default, "" too) steers and counts them but
	// drops nothing to them; NamesDropAll drops everything to them, as to
	// the prefixes the client named. A scope with ports or protocols drops
	// those to every target either way.
	Names string `yaml:"names"`
}

// Values of Config.Names.
const (
	NamesScrubOnlyNamedPorts = "scrub-only-named-ports"
	NamesDropAll             = "drop-all"
)

// NodeConfig is one scrubbing node.
type NodeConfig struct {
	Name string `yaml:"name"` // in the status note: "scrubbing at node1"
	URL  string `yaml:"url"`  // https://192.0.2.5:4680
	CA   string `yaml:"ca"`   // CA file that issued the node's certificate
	// CapacityBPS and CapacityPPS are what the node can take (0: no limit).
	// When the traffic offered to it (every packet to the targets of its
	// mitigations) exceeds either, the mitigations with traffic there are
	// attack-exceeded-capability (4) until it is below 90% of both for two
	// polls.
	CapacityBPS uint64 `yaml:"capacity-bps"`
	CapacityPPS uint64 `yaml:"capacity-pps"`
}

func (c Config) normalized() Config {
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate checks c and names the key at fault ("scrub: nodes[1].url: ...").
func (c Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("scrub: %s: %s", key, fmt.Sprintf(format, args...))
	}
	if len(c.Domains) == 0 {
		return bad("domains", "name at least one client domain whose mitigations are scrubbed")
	}
	seen := map[string]bool{}
	for i, d := range c.Domains {
		if d == "" || seen[d] {
			return bad(fmt.Sprintf("domains[%d]", i), "%q is empty or named twice", d)
		}
		seen[d] = true
	}
	if len(c.Nodes) == 0 {
		return bad("nodes", "at least one scrubbing node is needed")
	}
	names := map[string]bool{}
	for i, n := range c.Nodes {
		key := fmt.Sprintf("nodes[%d]", i)
		if n.Name == "" || names[n.Name] {
			return bad(key+".name", "%q is empty or used twice", n.Name)
		}
		names[n.Name] = true
		u, err := url.Parse(n.URL)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return bad(key+".url", "%q is not https://host:port", n.URL)
		}
		if n.CA == "" {
			return bad(key+".ca", "the CA file that issued node %q's certificate is required", n.Name)
		}
	}
	if c.Certificate == "" {
		return bad("certificate", "dotsd's client certificate toward the nodes is required")
	}
	if c.Key == "" {
		return bad("key", "the key of certificate is required")
	}
	if c.PollInterval < 0 {
		return bad("poll-interval", "%v: must not be negative", c.PollInterval)
	}
	if c.Timeout < 0 {
		return bad("timeout", "%v: must not be negative", c.Timeout)
	}
	switch c.Names {
	case "", NamesScrubOnlyNamedPorts, NamesDropAll:
	default:
		return bad("names", "%q: must be %s or %s", c.Names, NamesScrubOnlyNamedPorts, NamesDropAll)
	}
	return nil
}

var errNoNode = errors.New("no scrubbing node accepted the state")
