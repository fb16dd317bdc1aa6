package dotsclient

import (
	"container/list"
	"crypto/tls"
	"net"
	"sync"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/levee-dots/levee/tlsprofile"
)

// SessionCache keeps the (D)TLS sessions a client has had with its
// servers, so that reconnecting resumes them (an abbreviated handshake,
// RFC 9132 §4.7: after a lost session a client reconnects, preferably
// resuming). One cache serves every Dial of an agent; set it as
// Config.Sessions. It is safe for concurrent use.
//
// TLS sessions are crypto/tls's tickets (TLS 1.3 and TLS 1.2, RFC 5077),
// keyed by server name; DTLS sessions are pion's session ids, keyed by
// server address and name. Each kind holds at most the configured number
// of servers, the least recently used going first, and a DTLS session is
// offered for at most DTLSSessionLifetime after its full handshake (the
// upper limit RFC 5246 Appendix F.1.4 suggests; a TLS ticket carries its
// own lifetime, set by the server).
type SessionCache struct {
	tls  tls.ClientSessionCache
	dtls *dtlsSessions
}

// DTLSSessionLifetime bounds how long a cached DTLS session is offered.
const DTLSSessionLifetime = 24 * time.Hour

// DefaultSessionCacheSize is the number of servers a cache holds by default.
const DefaultSessionCacheSize = 16

// NewSessionCache returns a cache for up to servers servers of each
// transport (0: DefaultSessionCacheSize).
func NewSessionCache(servers int) *SessionCache {
	if servers <= 0 {
		servers = DefaultSessionCacheSize
	}
	return &SessionCache{tls: tls.NewLRUClientSessionCache(servers),
		dtls: &dtlsSessions{max: servers, lifetime: DTLSSessionLifetime, now: time.Now, byKey: map[string]*list.Element{}, lru: list.New()}}
}

// dtlsSessions is pion's SessionStore for a client: bounded in entries
// and in age.
type dtlsSessions struct {
	max      int
	lifetime time.Duration
	now      func() time.Time

	mu    sync.Mutex
	byKey map[string]*list.Element // of *dtlsEntry
	lru   *list.List               // most recently used first
}

type dtlsEntry struct {
	key   string
	s     piondtls.Session
	saved time.Time
}

// Set keeps the session of a completed full handshake.
func (d *dtlsSessions) Set(key []byte, s piondtls.Session) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.byKey[string(key)]; ok {
		e.Value = &dtlsEntry{key: string(key), s: s, saved: d.now()}
		d.lru.MoveToFront(e)
		return nil
	}
	d.byKey[string(key)] = d.lru.PushFront(&dtlsEntry{key: string(key), s: s, saved: d.now()})
	for d.lru.Len() > d.max {
		old := d.lru.Remove(d.lru.Back()).(*dtlsEntry)
		delete(d.byKey, old.key)
	}
	return nil
}

// Get returns the session to offer, or the zero Session (pion then makes
// a full handshake).
func (d *dtlsSessions) Get(key []byte) (piondtls.Session, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.byKey[string(key)]
	if !ok {
		return piondtls.Session{}, nil
	}
	ent := e.Value.(*dtlsEntry)
	if d.now().Sub(ent.saved) >= d.lifetime {
		d.lru.Remove(e)
		delete(d.byKey, ent.key)
		return piondtls.Session{}, nil
	}
	d.lru.MoveToFront(e)
	return ent.s, nil
}

// Del forgets a session the server did not resume or that ended in a
// fatal alert.
func (d *dtlsSessions) Del(key []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.byKey[string(key)]; ok {
		d.lru.Remove(e)
		delete(d.byKey, string(key))
	}
	return nil
}

// len is the number of sessions held.
func (d *dtlsSessions) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lru.Len()
}

// The client offers only AEAD suites with ephemeral ECDH (RFC 9132 §7,
// RFC 9325 §4.2), as the server accepts (tlsprofile).
var (
	dtlsCipherSuites = tlsprofile.DTLSCipherSuites()
	tlsCipherSuites  = tlsprofile.TLSCipherSuites()
)

// dtlsOptions are the pion options of a connection attempt: the
// certificate, or the PSK (psk.go), and what every attempt has.
func (c *Client) dtlsOptions(cand candidate) []piondtls.ClientOption {
	opts := []piondtls.ClientOption{
		piondtls.WithCertificates(c.cfg.Certificate), piondtls.WithRootCAs(c.cfg.RootCAs),
		piondtls.WithCipherSuites(dtlsCipherSuites...),
	}
	if c.cfg.PSK != nil {
		opts = c.pskCredentials()
	}
	opts = append(opts, piondtls.WithServerName(cand.serverName),
		piondtls.WithExtendedMasterSecret(piondtls.RequireExtendedMasterSecret))
	if c.cfg.Sessions != nil {
		opts = append(opts, piondtls.WithSessionStore(c.cfg.Sessions.dtls))
	}
	if c.cfg.HeavyLoss {
		opts = append(opts, piondtls.WithFlightInterval(HeavyLossFlightInterval), piondtls.WithDisableRetransmitBackoff(true))
	}
	if c.cfg.KeyLogWriter != nil {
		opts = append(opts, piondtls.WithKeyLogWriter(c.cfg.KeyLogWriter))
	}
	return opts
}

// tlsConfig is the crypto/tls configuration of a connection attempt.
func (c *Client) tlsConfig(cand candidate) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{c.cfg.Certificate}, RootCAs: c.cfg.RootCAs,
		ServerName: cand.serverName, MinVersion: tls.VersionTLS12, CipherSuites: tlsCipherSuites,
		NextProtos: []string{"coap"}, KeyLogWriter: c.cfg.KeyLogWriter}
	if c.cfg.Sessions != nil {
		cfg.ClientSessionCache = c.cfg.Sessions.tls
	}
	return cfg
}

// Resumed reports whether the session's handshake was an abbreviated one,
// resuming an earlier session from Config.Sessions.
func (c *Client) Resumed() bool {
	v, _ := c.resumed.Load(c.conn)
	r, _ := v.(bool)
	return r
}

// offeredDTLS is the id of the DTLS session pion will offer the server at
// raddr: pion keys a client's sessions by the server's address and name.
func (c *Client) offeredDTLS(raddr net.Addr, cand candidate) []byte {
	if c.cfg.Sessions == nil {
		return nil
	}
	s, _ := c.cfg.Sessions.dtls.Get([]byte(raddr.String() + "_" + cand.serverName))
	return s.ID
}
