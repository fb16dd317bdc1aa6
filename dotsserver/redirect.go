package dotsserver

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"

	"github.com/levee-dots/levee/dots"
)

// RedirectForever is the TTL of a redirect that lasts until it is cleared:
// it is sent as Max-Age 2^32-1, which a client takes as an infinite TTL
// (RFC 9132 §4.6).
const RedirectForever = time.Duration(math.MaxUint32) * time.Second

// Redirect sends clients to an alternate DOTS server (RFC 9132 §4.6):
// their requests on /mitigate and /config are answered 5.03 with a
// redirected-signal body, and the TTL travels as Max-Age. Heartbeats are
// still answered, so that the session lives until the client moves.
type Redirect struct {
	// AltServer is the FQDN of the alternate server (mandatory).
	AltServer string `json:"alt-server"`
	// AltServerRecord lists its addresses, so that a client need not
	// resolve the name during an attack (optional).
	AltServerRecord []netip.Addr `json:"alt-server-record,omitempty"`
	// TTL is how long a client may use the alternate server, and how long
	// this server redirects (from SetRedirect on); RedirectForever: until
	// cleared.
	TTL time.Duration `json:"ttl"`
	// Clients lists the cuids redirected; none: every client.
	Clients []string `json:"clients,omitempty"`
}

// Validate checks the redirect: a domain name, and a TTL of one second up
// to 2^32-2 seconds, or RedirectForever.
func (r Redirect) Validate() error {
	if err := checkAltServer(r.AltServer); err != nil {
		return err
	}
	for _, a := range r.AltServerRecord {
		if !a.IsValid() {
			return errors.New("alt-server-record: an address is not valid")
		}
	}
	if r.TTL < time.Second || r.TTL%time.Second != 0 || r.TTL > RedirectForever {
		return fmt.Errorf("ttl %v: use whole seconds from 1s up to %v (Max-Age is 32 bits; that value itself means until cleared)", r.TTL, RedirectForever)
	}
	for _, c := range r.Clients {
		if c == "" {
			return errors.New("clients: an empty cuid")
		}
	}
	return nil
}

// checkAltServer accepts a domain name (RFC 9132 §4.6: alt-server is an
// FQDN, inet:domain-name); an address literal goes in AltServerRecord.
func checkAltServer(name string) error {
	if name == "" {
		return errors.New("alt-server: the alternate server's name is mandatory (RFC 9132 §4.6)")
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fmt.Errorf("alt-server %q is an address: give the alternate server's name, its addresses as alt-server-record", name)
	}
	if len(strings.TrimSuffix(name, ".")) > 253 {
		return fmt.Errorf("alt-server %q: a domain name has at most 253 characters", name)
	}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("alt-server %q is not a domain name (label %q)", name, label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("alt-server %q is not a domain name (character %q)", name, c)
			}
		}
	}
	return nil
}

// SessionRedirect redirects the sessions a server holds beyond a number:
// a session whose first request arrives while more than Over sessions are
// open is redirected for as long as it lasts (RFC 8811 §3.2.2: the most
// signaling sessions reached).
type SessionRedirect struct {
	Over int
	Redirect
}

// Validate checks the number (at least 1) and the redirect; a session
// redirect names no clients.
func (sr SessionRedirect) Validate() error {
	if sr.Over < 1 {
		return fmt.Errorf("sessions over %d: want at least 1", sr.Over)
	}
	if len(sr.Clients) > 0 {
		return errors.New("a session redirect applies to whichever session is over the number: it names no clients")
	}
	return sr.Redirect.Validate()
}

// redirects holds the operator's redirect and the sessions redirected for
// the session count.
type redirects struct {
	s        *Server
	mu       sync.Mutex
	cur      *Redirect
	expiry   time.Time // zero: RedirectForever
	overflow map[mux.Conn]bool
}

func newRedirects(s *Server) *redirects {
	return &redirects{s: s, overflow: map[mux.Conn]bool{}}
}

// SetRedirect starts redirecting clients (replacing a redirect in force)
// and tells the observers of the clients it names, with a 5.03
// notification that ends their observation.
func (s *Server) SetRedirect(r Redirect) error {
	if err := r.Validate(); err != nil {
		return dots.Errorf(dots.BadRequest, "redirect: %v", err)
	}
	r.AltServerRecord = slices.Clone(r.AltServerRecord)
	r.Clients = slices.Clone(r.Clients)
	rd := s.redir
	rd.mu.Lock()
	rd.cur = &r
	rd.expiry = time.Time{}
	if r.TTL != RedirectForever {
		rd.expiry = s.now().Add(r.TTL)
	}
	rd.mu.Unlock()
	s.log.Info("clients redirected", "alt-server", r.AltServer, "ttl", r.TTL, "clients", len(r.Clients))
	for _, ob := range s.obs.all() {
		if r.applies(ob.client.CUID, "") {
			s.notifyRedirect(ob, r, r.TTL)
		}
	}
	return nil
}

// ClearRedirect ends the operator's redirect; it reports whether one was
// in force.
func (s *Server) ClearRedirect() bool {
	_, _, ok := s.CurrentRedirect()
	s.redir.mu.Lock()
	s.redir.cur = nil
	s.redir.mu.Unlock()
	if ok {
		s.log.Info("redirect cleared")
	}
	return ok
}

// CurrentRedirect returns the operator's redirect in force and when it
// ends (zero: RedirectForever).
func (s *Server) CurrentRedirect() (Redirect, time.Time, bool) {
	rd := s.redir
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.cur == nil {
		return Redirect{}, time.Time{}, false
	}
	if !rd.expiry.IsZero() && !s.now().Before(rd.expiry) {
		rd.cur = nil // its TTL ran out
		return Redirect{}, time.Time{}, false
	}
	return *rd.cur, rd.expiry, true
}

func (r Redirect) applies(cuids ...string) bool {
	if len(r.Clients) == 0 {
		return true
	}
	for _, c := range cuids {
		if c != "" && slices.Contains(r.Clients, c) {
			return true
		}
	}
	return false
}

// redirectFor tells whether req is answered with a redirect, and the
// TTL left to send as Max-Age.
func (s *Server) redirectFor(req *request) (Redirect, time.Duration, bool) {
	if req.resource != "mitigate" && req.resource != "config" {
		return Redirect{}, 0, false
	}
	if r, expiry, ok := s.CurrentRedirect(); ok && r.applies(req.peer.cuid, req.params["cuid"]) {
		ttl := r.TTL
		if !expiry.IsZero() {
			ttl = expiry.Sub(s.now())
		}
		return r, ttl, true
	}
	if sr := s.opts.SessionRedirect; sr != nil && s.redir.overflowing(req.conn, sr.Over) {
		return sr.Redirect, sr.TTL, true
	}
	return Redirect{}, 0, false
}

// overflowing decides once per session, at its first request, whether it
// is one over the limit.
func (rd *redirects) overflowing(conn mux.Conn, over int) bool {
	rd.mu.Lock()
	v, known := rd.overflow[conn]
	rd.mu.Unlock()
	if known {
		return v
	}
	rd.s.live.mu.Lock()
	n := len(rd.s.live.conns)
	rd.s.live.mu.Unlock()
	v = n > over
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if _, known := rd.overflow[conn]; known {
		return rd.overflow[conn]
	}
	// As in observers.add: a live context means the close callback runs.
	conn.AddOnClose(func() {
		rd.mu.Lock()
		delete(rd.overflow, conn)
		rd.mu.Unlock()
	})
	if conn.Context().Err() == nil {
		rd.overflow[conn] = v
	}
	if v {
		rd.s.rlog.warn("redirect:sessions", "session redirected: the server holds more sessions than its session redirect allows",
			"sessions", n, "limit", over, "remote", conn.RemoteAddr().String())
	}
	return v
}

// maxAge renders a TTL as Max-Age: whole seconds rounded up, 2^32-1 for
// RedirectForever.
func maxAge(ttl time.Duration) uint32 {
	if ttl >= RedirectForever {
		return math.MaxUint32
	}
	secs := (ttl + time.Second - 1) / time.Second
	if secs < 1 {
		secs = 1
	}
	return uint32(secs)
}

func (r Redirect) message() *dots.Message {
	rs := &dots.RedirectedSignal{AltServer: r.AltServer}
	for _, a := range r.AltServerRecord {
		rs.AltServerRecord = append(rs.AltServerRecord, a.String())
	}
	return &dots.Message{RedirectedSignal: rs}
}

// replyRedirect answers 5.03 with the redirected-signal body and the TTL
// as Max-Age (RFC 9132 §4.6).
func replyRedirect(w mux.ResponseWriter, r Redirect, ttl time.Duration) error {
	b, err := dots.Encode(r.message())
	if err != nil {
		return err
	}
	if err := w.SetResponse(codes.ServiceUnavailable, message.MediaType(dots.ContentFormat), bytes.NewReader(b)); err != nil {
		return err
	}
	w.Message().SetOptionUint32(message.MaxAge, maxAge(ttl))
	return nil
}

// notifyRedirect sends an observer the redirect as a 5.03 notification,
// paced like the others; an error notification ends the observation (RFC
// 7641 §3.2), so the registration is dropped once it is sent.
func (s *Server) notifyRedirect(ob *observer, r Redirect, ttl time.Duration) {
	age := maxAge(ttl)
	s.obs.notify(ob, func() (note, bool) {
		return note{code: dots.ServiceUnavailable, body: r.message(), maxAge: &age}, true
	})
}
