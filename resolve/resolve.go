// Package resolve resolves the names of DOTS mitigation scopes
// (target-fqdn, and the host of a target-uri, RFC 9132 §4.4.1) to
// addresses, with the TTL that says when to ask again.
//
// It sends A and AAAA queries (RFC 1035 §4) with miekg/dns to the
// configured servers, or those of /etc/resolv.conf: over UDP, again over
// TCP when the answer is truncated (RFC 1035 §4.2, RFC 7766), and follows
// a CNAME chain within the answer (RFC 1034 §3.6.2, at most MaxCNAME
// links). The TTL of an answer is the smallest TTL of the RRs used,
// CNAMEs included (RFC 2181 §8), clamped to [MinTTL, MaxTTL].
//
// Addresses for which Options.Exclude is true (the server's own diversion
// addresses, which a DNS diversion puts in place of the name's records)
// are dropped. The last good answer of each name is kept in a bounded
// cache and is served, marked stale by a short TTL and without error,
// when no server answers (RFC 8767 "serve stale", for at most MaxStale)
// or when every address of the answer is excluded: the server keeps
// working while the resolver is down or the name is diverted. NXDOMAIN
// is a definite answer: an error that says the name does not exist.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Defaults applied by New to zero fields of Options.
const (
	DefaultTimeout   = 2 * time.Second
	DefaultMinTTL    = 5 * time.Second
	DefaultMaxTTL    = time.Hour
	DefaultStaleTTL  = 30 * time.Second
	DefaultMaxStale  = 24 * time.Hour
	DefaultSystemTTL = time.Minute
	DefaultMaxNames  = 1024
	DefaultResolv    = "/etc/resolv.conf"

	MaxCNAME   = 8   // CNAME links followed within one answer
	MaxAddrs   = 64  // addresses kept per name (the lowest, sorted)
	MaxServers = 8   // servers asked, in order
	MaxName    = 253 // characters of a name, without the final dot
	udpSize    = 1232
)

// Sentinel errors; test them with errors.Is.
var (
	// ErrNotFound: a server answered NXDOMAIN.
	ErrNotFound = errors.New("the name does not exist (NXDOMAIN)")
	// ErrNoAddress: the name exists but has no A or AAAA records.
	ErrNoAddress = errors.New("the name has no A or AAAA records")
	// ErrExcluded: every address of the name is excluded (it is
	// diverted) and no earlier answer is known.
	ErrExcluded = errors.New("the name resolves only to excluded (diversion) addresses and no earlier answer is known")
	// ErrUnreachable: no server gave a usable answer and no earlier
	// answer is known.
	ErrUnreachable = errors.New("no DNS server answered")
	// ErrBadName: not a domain name.
	ErrBadName = errors.New("not a domain name")
)

// Options configures a Resolver. The zero value asks the servers of
// /etc/resolv.conf.
type Options struct {
	// Servers are asked in order ("192.0.2.53:53", "[2001:db8::53]:53";
	// a missing port is 53). Empty: the nameservers of ResolvConf, and if
	// it has none, Go's system resolver (whose answers get SystemTTL).
	Servers    []string
	ResolvConf string        // default /etc/resolv.conf
	Timeout    time.Duration // per query and server (default 2 s)
	Now        func() time.Time
	// Exclude reports addresses to drop from answers (e.g. the DNS
	// diversion backend's IsDiversionAddr). May be nil.
	Exclude func(netip.Addr) bool
	MinTTL  time.Duration // default 5 s
	MaxTTL  time.Duration // default 1 h
	// StaleTTL is the TTL of an answer served from the cache because the
	// servers failed or answered only excluded addresses (default 30 s,
	// at least MinTTL).
	StaleTTL time.Duration
	// MaxStale is how long after its expiry a cached answer may still be
	// served when the servers fail (default 24 h).
	MaxStale  time.Duration
	SystemTTL time.Duration // TTL of answers of Go's system resolver (default 1 min)
	// System is the resolver used when there is no server (default
	// net.DefaultResolver).
	System   *net.Resolver
	MaxNames int // names kept in the cache, least recently used evicted (default 1024)
}

// Answer is the result of Lookup.
type Answer struct {
	Addrs []netip.Addr  // sorted, deduplicated, none excluded
	TTL   time.Duration // when to ask again
	// Stale: the answer is the cached last good one (or a partial one),
	// because of Err.
	Stale  bool
	Err    error  // why the answer is stale
	Server string // the server that answered; "cache" or "system"
}

// Resolver resolves names; it is safe for concurrent use.
type Resolver struct {
	o       Options
	servers []string
	cfgErr  error // invalid Options.Servers entries
	cache   *cache
}

// New returns a resolver. Invalid entries of o.Servers are skipped; they
// are reported by Resolve when no valid one is left, and by CheckServer
// beforehand.
func New(o Options) *Resolver {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MinTTL <= 0 {
		o.MinTTL = DefaultMinTTL
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.MaxTTL < o.MinTTL {
		o.MaxTTL = o.MinTTL
	}
	if o.StaleTTL <= 0 {
		o.StaleTTL = DefaultStaleTTL
	}
	o.StaleTTL = min(max(o.StaleTTL, o.MinTTL), o.MaxTTL)
	if o.MaxStale <= 0 {
		o.MaxStale = DefaultMaxStale
	}
	if o.SystemTTL <= 0 {
		o.SystemTTL = DefaultSystemTTL
	}
	if o.MaxNames <= 0 {
		o.MaxNames = DefaultMaxNames
	}
	if o.System == nil {
		o.System = net.DefaultResolver
	}
	if o.ResolvConf == "" {
		o.ResolvConf = DefaultResolv
	}
	r := &Resolver{o: o, cache: newCache(o.MaxNames)}
	var errs []error
	for _, s := range o.Servers {
		hp, err := CheckServer(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(r.servers) < MaxServers {
			r.servers = append(r.servers, hp)
		}
	}
	if len(o.Servers) > 0 && len(r.servers) == 0 {
		r.cfgErr = fmt.Errorf("resolve: no usable server: %w", errors.Join(errs...))
	}
	if len(o.Servers) == 0 {
		if cc, err := dns.ClientConfigFromFile(o.ResolvConf); err == nil {
			for _, s := range cc.Servers {
				if len(r.servers) < MaxServers {
					r.servers = append(r.servers, net.JoinHostPort(s, cc.Port))
				}
			}
		}
	}
	return r
}

// CheckServer validates a server address and returns it as host:port
// (port 53 added when missing): an IP address, not a host name, since the
// resolver cannot resolve its own servers.
func CheckServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.Trim(s, "[]"), "53"
	}
	a, aerr := netip.ParseAddr(host)
	p, perr := strconv.Atoi(port)
	if aerr != nil || perr != nil || p <= 0 || p > 65535 {
		return "", fmt.Errorf("resolve: server %q: want an IP address and port (192.0.2.53:53, [2001:db8::53]:53)", s)
	}
	return netip.AddrPortFrom(a, uint16(p)).String(), nil
}

// Servers returns the servers asked, in order; empty means Go's system
// resolver.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

// Resolve returns name's addresses and the TTL after which to ask again.
// When the servers fail or answer only excluded addresses it returns the
// last good answer with a short TTL and no error; see Lookup for the
// details.
func (r *Resolver) Resolve(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	a, err := r.Lookup(ctx, name)
	return a.Addrs, a.TTL, err
}

// LookupNetIP is Resolve in the shape of net.Resolver.LookupNetIP, for
// callers written against it: network "ip", "ip4" or "ip6" selects the
// families returned. An answer with no address of the family is an error.
func (r *Resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	addrs, _, err := r.Resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var keep func(netip.Addr) bool
	switch network {
	case "ip":
		return addrs, nil
	case "ip4":
		keep = netip.Addr.Is4
	case "ip6":
		keep = netip.Addr.Is6
	default:
		return nil, fmt.Errorf("resolve %s: network %q: want ip, ip4 or ip6", host, network)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if keep(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("resolve %s: %w: none for %s (it has %v)", host, ErrNoAddress, network, addrs)
	}
	return out, nil
}

// Lookup is Resolve with the details: whether the answer is stale, why,
// and which server gave it. An IP address literal is its own answer (with
// MaxTTL). Errors name the name, and wrap ErrBadName, ErrNotFound,
// ErrNoAddress, ErrExcluded or ErrUnreachable.
func (r *Resolver) Lookup(ctx context.Context, name string) (Answer, error) {
	if a, err := netip.ParseAddr(strings.Trim(strings.TrimSpace(name), "[]")); err == nil {
		a = a.Unmap().WithZone("")
		if r.excluded(a) {
			return Answer{}, fmt.Errorf("resolve %s: %w", a, ErrExcluded)
		}
		return Answer{Addrs: []netip.Addr{a}, TTL: r.o.MaxTTL, Server: "literal"}, nil
	}
	fqdn, err := canonical(name)
	if err != nil {
		return Answer{}, err
	}
	if r.cfgErr != nil {
		return Answer{}, fmt.Errorf("resolve %s: %w", fqdn, r.cfgErr)
	}
	now := r.o.Now()
	if e, ok := r.cache.get(fqdn); ok && now.Before(e.expires) {
		return Answer{Addrs: clone(e.addrs), TTL: max(e.expires.Sub(now).Round(time.Second), time.Second), Server: "cache"}, nil
	}
	res := r.query(ctx, fqdn)
	now = r.o.Now()
	switch {
	case res.err == nil && len(res.addrs) > 0:
		ttl := r.clamp(res.ttl)
		r.cache.put(fqdn, entry{addrs: clone(res.addrs), expires: now.Add(ttl)})
		return Answer{Addrs: res.addrs, TTL: ttl, Server: res.server}, nil
	case errors.Is(res.err, ErrNotFound):
		r.cache.drop(fqdn)
		return Answer{}, fmt.Errorf("resolve %s: %w", fqdn, res.err)
	case res.err == nil && res.excluded > 0:
		// The name answers only with our diversion: its own addresses
		// are the last ones seen, however old.
		if e, ok := r.cache.get(fqdn); ok {
			return Answer{Addrs: clone(e.addrs), TTL: r.o.StaleTTL, Stale: true, Server: "cache",
				Err: fmt.Errorf("resolve %s: %w", fqdn, ErrExcluded)}, nil
		}
		return Answer{}, fmt.Errorf("resolve %s: %w", fqdn, ErrExcluded)
	case res.err == nil:
		r.cache.drop(fqdn)
		return Answer{}, fmt.Errorf("resolve %s: %w", fqdn, ErrNoAddress)
	}
	// No usable answer (timeouts, SERVFAIL, REFUSED, ...).
	ferr := fmt.Errorf("resolve %s: %w", fqdn, res.err)
	if e, ok := r.cache.get(fqdn); ok && now.Before(e.expires.Add(r.o.MaxStale)) {
		return Answer{Addrs: clone(e.addrs), TTL: r.o.StaleTTL, Stale: true, Err: ferr, Server: "cache"}, nil
	}
	if len(res.addrs) > 0 { // one type answered, the other did not
		return Answer{Addrs: res.addrs, TTL: r.o.StaleTTL, Stale: true, Err: ferr, Server: res.server}, nil
	}
	return Answer{}, ferr
}

func (r *Resolver) excluded(a netip.Addr) bool {
	return r.o.Exclude != nil && r.o.Exclude(a)
}

func (r *Resolver) clamp(ttl time.Duration) time.Duration {
	return min(max(ttl, r.o.MinTTL), r.o.MaxTTL)
}

// canonical returns name lower case and fully qualified, or an error.
func canonical(name string) (string, error) {
	n := strings.TrimSpace(name)
	if len(strings.TrimSuffix(n, ".")) > MaxName {
		return "", fmt.Errorf("resolve %.40q...: %w: longer than %d characters", n, ErrBadName, MaxName)
	}
	if n == "" || n == "." || strings.ContainsAny(n, " \t\\/:@*") {
		return "", fmt.Errorf("resolve %q: %w", name, ErrBadName)
	}
	if _, ok := dns.IsDomainName(n); !ok {
		return "", fmt.Errorf("resolve %q: %w", name, ErrBadName)
	}
	return dns.CanonicalName(n), nil
}

func clone(a []netip.Addr) []netip.Addr { return append([]netip.Addr(nil), a...) }

// cache is a bounded LRU of the last good answers, by name.
type cache struct {
	mu    sync.Mutex
	max   int
	tick  uint64
	items map[string]*entry
}

type entry struct {
	addrs   []netip.Addr
	expires time.Time
	used    uint64
}

func newCache(n int) *cache { return &cache{max: n, items: map[string]*entry{}} }

func (c *cache) get(name string) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[name]
	if !ok {
		return entry{}, false
	}
	c.tick++
	e.used = c.tick
	return *e, true
}

func (c *cache) put(name string, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	e.used = c.tick
	if _, ok := c.items[name]; !ok && len(c.items) >= c.max {
		oldest, ou := "", ^uint64(0)
		for n, it := range c.items {
			if it.used < ou {
				oldest, ou = n, it.used
			}
		}
		delete(c.items, oldest)
	}
	c.items[name] = &e
}

func (c *cache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.items, name)
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
