package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/levee-dots/levee/dotsclient"
)

// agentDialer opens the agent's sessions. It follows a redirect and keeps
// to the alternate server while its TTL lasts (RFC 9132 §4.6, with
// dotsclient.Redirects), and it remembers which transport Happy Eyeballs
// chose for a set of servers, so that a reconnect tries the known-good
// one first (§4.3 allows caching the outcome).
type agentDialer struct {
	g        *globals
	rd       dotsclient.Redirects
	mu       sync.Mutex        // for known: a probe and a parallel session may dial at once
	known    map[string]string // servers, joined → "dtls" or "tls"
	redirect *redirectError    // to follow on the next dial
	ignored  bool              // the last redirect was ignored (a loop): do not rush to the next
}

func newAgentDialer(g *globals) *agentDialer {
	return &agentDialer{g: g, known: map[string]string{}}
}

// agentReprobeEvery is how often a session that fell back to TLS tries DTLS
// again (RFC 9132 §4.3), give or take a fifth.
var agentReprobeEvery = 5 * time.Minute

// reprobeIn is the wait before the next DTLS probe.
func reprobeIn() time.Duration {
	return agentReprobeEvery*4/5 + rand.N(agentReprobeEvery*2/5+1)
}

// autoTransport reports whether the configuration lets Happy Eyeballs choose.
func autoTransport(cc dotsclient.Config) bool { return cc.Transport == "" || cc.Transport == "auto" }

func serversKey(cc dotsclient.Config) string { return strings.Join(cc.Servers, ",") }

// knownGood is the transport that last worked for the servers of cc.
func (d *agentDialer) knownGood(cc dotsclient.Config) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.known[serversKey(cc)]
}

func (d *agentDialer) remember(cc dotsclient.Config, transport string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.known[serversKey(cc)] = transport
}

// config is the client configuration of the next session.
func (d *agentDialer) config(underAttack bool) (dotsclient.Config, error) {
	cfg, err := loadCtlConfig(d.g.config)
	if err != nil {
		return dotsclient.Config{}, err
	}
	cc, err := cfg.clientConfig()
	if err != nil {
		return dotsclient.Config{}, err
	}
	cc.Sessions = d.g.sessions
	if re := d.redirect; re != nil {
		d.redirect = nil
		servers, err := d.rd.Follow(re.from, re.resp)
		d.ignored = err != nil
		if err == nil {
			rs, _ := dotsclient.Redirected(re.resp)
			cc.Servers, cc.ServerName = servers, rs.AltServer
			return cc, nil
		}
		fmt.Fprintf(d.g.stderr, "%s agent: ignoring the redirect: %v\n", stamp(), err)
	}
	servers, name := d.rd.Servers(cc.Servers, underAttack)
	cc.Servers = servers
	if name != "" {
		cc.ServerName = name
	}
	return cc, nil
}

// dial opens a session; cc is the configuration it was opened with.
func (d *agentDialer) dial(ctx context.Context, underAttack bool) (*dotsclient.Client, dotsclient.Config, error) {
	cc, err := d.config(underAttack)
	if err != nil {
		return nil, cc, err
	}
	if autoTransport(cc) && d.knownGood(cc) == "tls" {
		tlsOnly := cc
		tlsOnly.Transport = "tls"
		if c, err := d.open(ctx, tlsOnly); err == nil {
			return c, cc, nil
		}
	}
	c, err := d.open(ctx, cc)
	if err != nil {
		return nil, cc, err
	}
	if autoTransport(cc) {
		d.remember(cc, c.Transport())
	}
	return c, cc, nil
}

func (d *agentDialer) open(ctx context.Context, cc dotsclient.Config) (*dotsclient.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, d.g.timeout)
	defer cancel()
	c, err := dotsclient.Dial(dctx, cc)
	if err != nil {
		return nil, err
	}
	d.rd.Used(c.Remote())
	return c, nil
}

// probeDTLS tries DTLS to the servers of cc: a session over DTLS, or an error.
func (d *agentDialer) probeDTLS(ctx context.Context, cc dotsclient.Config) (*dotsclient.Client, error) {
	cc.Transport = "dtls"
	c, err := d.open(ctx, cc)
	if err != nil {
		return nil, err
	}
	d.remember(cc, "dtls")
	return c, nil
}

// follow notes that the next dial follows the redirect in err, if any.
func (d *agentDialer) follow(err error) bool {
	var re *redirectError
	if errors.As(err, &re) {
		d.redirect = re
		return true
	}
	return false
}
