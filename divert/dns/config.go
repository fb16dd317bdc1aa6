package dns

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultTTL     uint32 = 30
	DefaultTimeout        = 5 * time.Second
	DefaultRetries        = 3
	DefaultBackoff        = 500 * time.Millisecond
)

// Config configures the DNS diversion backend. Zero fields take the
// defaults above.
type Config struct {
	Zones   []Zone
	TTL     uint32        // TTL of the diverted records (default 30)
	Timeout time.Duration // per DNS exchange (default 5 s)
	// Retries is how many times a failed exchange (timeout, network
	// error, SERVFAIL) is retried, with exponential backoff. 0 means the
	// default 3; a negative value means no retry. Refusals (REFUSED,
	// NOTAUTH, TSIG errors) are never retried.
	Retries int
	Backoff time.Duration // delay before the first retry, doubled each time (default 500 ms)
}

// Zone is one zone the server may update, and who may divert what in it.
type Zone struct {
	Name    string // "svc.example."
	Primary string // "127.0.0.1:10053": the primary, reached over TCP
	KeyName string // TSIG key name, "dots-key." (HMAC-SHA256)
	Secret  string // base64 TSIG secret (the caller reads it from a file)
	// Scrubbing are the A/AAAA addresses put in place of a diverted name's
	// records. An address family with no scrubbing address has its RRset
	// removed during the diversion.
	Scrubbing []netip.Addr
	// ClientScrubbing overrides Scrubbing for a client domain.
	ClientScrubbing map[string][]netip.Addr
	// Clients maps a client domain to the names it owns in this zone:
	// exact names ("www.svc.example.") or "*.x.svc.example.", which owns
	// every name strictly below x.svc.example.
	Clients map[string][]string
	// Prefixes maps a target prefix to names in this zone that are served
	// from it: a mitigation whose target-prefix overlaps it diverts those
	// names too (they must still be owned by the client domain).
	Prefixes map[netip.Prefix][]string
}

// normalized returns cfg with defaults applied and names in canonical form
// (lower case, fully qualified).
func (cfg Config) normalized() Config {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	zones := make([]Zone, len(cfg.Zones))
	for i, z := range cfg.Zones {
		z.Name = canonical(z.Name)
		z.KeyName = canonical(z.KeyName)
		clients := make(map[string][]string, len(z.Clients))
		for dom, names := range z.Clients {
			clients[dom] = canonicalAll(names)
		}
		z.Clients = clients
		prefixes := make(map[netip.Prefix][]string, len(z.Prefixes))
		for p, names := range z.Prefixes {
			prefixes[p.Masked()] = canonicalAll(names)
		}
		z.Prefixes = prefixes
		zones[i] = z
	}
	cfg.Zones = zones
	return cfg
}

// Validate checks cfg and names the field at fault ("zones[0].secret: ...").
func (cfg Config) Validate() error {
	n := cfg.normalized()
	if len(n.Zones) == 0 {
		return errors.New("dns: zones: at least one zone is needed")
	}
	seen := map[string]int{}
	for i, z := range n.Zones {
		if err := z.validate(); err != nil {
			return fmt.Errorf("dns: zones[%d] (%s): %w", i, z.Name, err)
		}
		if j, dup := seen[z.Name]; dup {
			return fmt.Errorf("dns: zones[%d].name: zone %s is also zones[%d]", i, z.Name, j)
		}
		seen[z.Name] = i
	}
	return nil
}

func (z Zone) validate() error {
	switch {
	case z.Name == "." || !validName(z.Name):
		return fmt.Errorf("name: %q is not a zone name", z.Name)
	case z.KeyName == "." || !validName(z.KeyName):
		return fmt.Errorf("key-name: %q is not a TSIG key name", z.KeyName)
	case z.Secret == "":
		return errors.New("secret: empty TSIG secret")
	case len(z.Scrubbing) == 0 && len(z.ClientScrubbing) == 0:
		return errors.New("scrubbing: no scrubbing address")
	case len(z.Clients) == 0:
		return errors.New("clients: no client domain may divert any name")
	}
	if _, err := base64.StdEncoding.DecodeString(z.Secret); err != nil {
		return fmt.Errorf("secret: not base64: %v", err)
	}
	host, port, err := net.SplitHostPort(z.Primary)
	if err != nil {
		return fmt.Errorf("primary: %q: want host:port: %v", z.Primary, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 || host == "" {
		return fmt.Errorf("primary: %q: want host:port", z.Primary)
	}
	if err := validAddrs(z.Scrubbing); err != nil {
		return fmt.Errorf("scrubbing: %v", err)
	}
	for _, dom := range sortedKeys(z.ClientScrubbing) {
		if err := validAddrs(z.ClientScrubbing[dom]); err != nil || len(z.ClientScrubbing[dom]) == 0 {
			return fmt.Errorf("client-scrubbing[%s]: %v", dom, orEmpty(err))
		}
	}
	for _, dom := range sortedKeys(z.Clients) {
		if len(z.ClientScrubbing[dom]) == 0 && len(z.Scrubbing) == 0 {
			return fmt.Errorf("scrubbing: client %s has no scrubbing address", dom)
		}
		for _, pat := range z.Clients[dom] {
			if err := z.validPattern(pat); err != nil {
				return fmt.Errorf("clients[%s]: %v", dom, err)
			}
		}
	}
	for p, names := range z.Prefixes {
		for _, name := range names {
			if !validName(name) || !dns.IsSubDomain(z.Name, name) {
				return fmt.Errorf("prefixes[%s]: %q is not a name in the zone", p, name)
			}
		}
	}
	return nil
}

func (z Zone) validPattern(pat string) error {
	name := strings.TrimPrefix(pat, "*.")
	if !validName(name) || strings.Contains(name, "*") || !dns.IsSubDomain(z.Name, name) {
		return fmt.Errorf("%q is not a name (or *.suffix) in the zone", pat)
	}
	return nil
}

// owns reports whether the client domain owns name in this zone.
func (z Zone) owns(domain, name string) bool {
	for _, pat := range z.Clients[domain] {
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			if name != suffix && dns.IsSubDomain(suffix, name) {
				return true
			}
		} else if pat == name {
			return true
		}
	}
	return false
}

// scrubbing returns the addresses that replace a diverted name's records
// for a client domain.
func (z Zone) scrubbing(domain string) []netip.Addr {
	if a := z.ClientScrubbing[domain]; len(a) > 0 {
		return a
	}
	return z.Scrubbing
}

// zoneOf returns the most specific configured zone holding name.
func zoneOf(zones []Zone, name string) (Zone, bool) {
	best, found := Zone{}, false
	for _, z := range zones {
		if dns.IsSubDomain(z.Name, name) && (!found || dns.CountLabel(z.Name) > dns.CountLabel(best.Name)) {
			best, found = z, true
		}
	}
	return best, found
}

func validAddrs(addrs []netip.Addr) error {
	for _, a := range addrs {
		if !a.IsValid() || a.Zone() != "" {
			return fmt.Errorf("%q is not a usable address", a)
		}
	}
	return nil
}

func validName(name string) bool {
	_, ok := dns.IsDomainName(name)
	return ok && name != ""
}

func canonical(name string) string {
	if name == "" {
		return ""
	}
	return dns.CanonicalName(strings.TrimSpace(name))
}

func canonicalAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = canonical(n)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func orEmpty(err error) string {
	if err == nil {
		return "empty address list"
	}
	return err.Error()
}

var (
	keySecret    = regexp.MustCompile(`secret\s+"([^"]+)"`)
	keyAlgorithm = regexp.MustCompile(`algorithm\s+"?([A-Za-z0-9-]+)"?`)
)

// ReadSecret reads a TSIG secret file for Zone.Secret: either the bare
// base64 secret, or a BIND key clause as written by
// `tsig-keygen -a hmac-sha256 dots-key` (whose algorithm must then be
// hmac-sha256).
func ReadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("dns: secret-file: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if m := keySecret.FindStringSubmatch(text); m != nil {
		if a := keyAlgorithm.FindStringSubmatch(text); a != nil && !strings.EqualFold(a[1], "hmac-sha256") {
			return "", fmt.Errorf("dns: secret-file %s: algorithm %s, want hmac-sha256", path, a[1])
		}
		text = m[1]
	}
	if _, err := base64.StdEncoding.DecodeString(text); err != nil || text == "" {
		return "", fmt.Errorf("dns: secret-file %s: want a base64 secret or a BIND key clause", path)
	}
	return text, nil
}
