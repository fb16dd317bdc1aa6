package dotsclient

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/levee-dots/levee/dots"
)

// LoopWindow is how recently a server must have been used for a redirect
// to it to be ignored as a loop (RFC 9132 §4.6: five minutes).
const LoopWindow = 5 * time.Minute

// ErrRedirectLoop reports a redirect to a server the client used within
// LoopWindow: the redirect is ignored, and the client goes on with the
// servers it was provisioned with (RFC 9132 §4.6).
var ErrRedirectLoop = errors.New("dotsclient: redirected to a server used within the last five minutes")

// Redirected returns the redirect a response carries: a 5.03 with an
// ietf-dots-signal-channel:redirected-signal body (RFC 9132 §4.6).
func Redirected(r *Response) (*dots.RedirectedSignal, bool) {
	if r == nil || r.Code != dots.ServiceUnavailable || r.Body == nil || r.Body.RedirectedSignal == nil || r.Body.RedirectedSignal.AltServer == "" {
		return nil, false
	}
	return r.Body.RedirectedSignal, true
}

// Redirects follows redirected signaling across the sessions of one
// client (RFC 9132 §4.6): it remembers the servers used, refuses a
// redirect back to one used within LoopWindow, and keeps the alternate
// server for the TTL the 5.03 gave as Max-Age. The zero value is ready;
// Now may be set before first use.
type Redirects struct {
	Now func() time.Time // nil: time.Now

	mu   sync.Mutex
	alt  *alternate
	used map[string]time.Time // host (address or lower-case name) → last use
}

// alternate is a cached alternate server.
type alternate struct {
	name    string
	servers []string  // host:port to dial
	expiry  time.Time // zero: until redirected again (Max-Age 2^32-1)
}

func (rd *Redirects) now() time.Time {
	if rd.Now != nil {
		return rd.Now()
	}
	return time.Now()
}

// hostKey is the form in which hosts are compared: an address in its
// canonical text, a name in lower case without the final dot.
func hostKey(host string) string {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// Used records that the client communicated with server (host:port, or a
// host) now.
func (rd *Redirects) Used(server string) {
	host := server
	if h, _, err := net.SplitHostPort(server); err == nil {
		host = h
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.used == nil {
		rd.used = map[string]time.Time{}
	}
	rd.used[hostKey(host)] = rd.now()
}

// Follow takes the redirect r from the server from (host:port; it counts
// as used now) and returns the servers to dial: the alternate's addresses
// (alt-server-record, so that no DNS lookup is needed during an attack),
// or its name when none is given, with from's port. The alternate is
// kept for the TTL (Max-Age; 0 means for the request in progress only).
// A redirect to a server used within LoopWindow is ignored:
// ErrRedirectLoop.
func (rd *Redirects) Follow(from string, r *Response) ([]string, error) {
	rs, ok := Redirected(r)
	if !ok {
		return nil, errors.New("dotsclient: the response is no redirect (5.03 with a redirected-signal body)")
	}
	_, port, err := net.SplitHostPort(from)
	if err != nil {
		return nil, fmt.Errorf("dotsclient: redirect from %q: %w", from, err)
	}
	var servers []string
	for _, s := range rs.AltServerRecord {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("dotsclient: redirect: alt-server-record %q is not an address", s)
		}
		servers = append(servers, net.JoinHostPort(a.Unmap().String(), port))
	}
	if len(servers) == 0 {
		servers = []string{net.JoinHostPort(rs.AltServer, port)}
	}
	rd.Used(from)
	now := rd.now()
	rd.mu.Lock()
	defer rd.mu.Unlock()
	for _, host := range append([]string{rs.AltServer}, rs.AltServerRecord...) {
		if at, ok := rd.used[hostKey(host)]; ok && now.Sub(at) < LoopWindow {
			return nil, fmt.Errorf("%w: %s (used %v ago); alert the operator of %s", ErrRedirectLoop, host, now.Sub(at).Round(time.Second), from)
		}
	}
	rd.alt = nil
	if r.MaxAge == nil || *r.MaxAge > 0 {
		alt := &alternate{name: rs.AltServer, servers: servers}
		if r.MaxAge != nil && *r.MaxAge != math.MaxUint32 {
			alt.expiry = now.Add(time.Duration(*r.MaxAge) * time.Second)
		}
		rd.alt = alt
	}
	return servers, nil
}

// Servers returns the servers to use now: the alternate while its TTL
// lasts, else the provisioned ones. During an attack the client stays
// with the alternate after its TTL (the fallback waits until the attack
// is over, RFC 9132 §4.6); only a new redirect moves it.
func (rd *Redirects) Servers(provisioned []string, underAttack bool) (servers []string, serverName string) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	alt := rd.alt
	if alt == nil {
		return provisioned, ""
	}
	if !alt.expiry.IsZero() && !rd.now().Before(alt.expiry) && !underAttack {
		rd.alt = nil
		return provisioned, ""
	}
	return alt.servers, alt.name
}

// Dial follows the redirect r received on the session from: Happy
// Eyeballs (RFC 9132 §4.3) over the alternate's addresses, its name
// verified in the server certificate. cfg is the client's configuration;
// its Servers and ServerName are replaced.
func (rd *Redirects) Dial(ctx context.Context, cfg Config, from *Client, r *Response) (*Client, error) {
	servers, err := rd.Follow(from.Remote(), r)
	if err != nil {
		return nil, err
	}
	rs, _ := Redirected(r)
	cfg.Servers, cfg.ServerName = servers, rs.AltServer
	c, err := Dial(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("dotsclient: redirected to %s: %w", rs.AltServer, err)
	}
	rd.Used(c.Remote())
	return c, nil
}
