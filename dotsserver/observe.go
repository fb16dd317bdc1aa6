package dotsserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/service"
)

// notifyGap is the least time between two notifications to one observer
// over DTLS. The server keeps no RTT estimate, so RFC 7641 §4.5.1 (and
// RFC 9132 §4.4.2.1, RFC 8085 §3.1.3) allow one non-confirmable
// notification every 3 seconds. Over TLS, TCP's congestion control paces.
const notifyGap = 3 * time.Second

// recentMIDs is how many message IDs of an observer's last notifications
// are kept to match an RST from the client (RFC 7641 §3.6).
const recentMIDs = 4

// unblockedNotification is the largest notification payload sent in one
// message: go-coap's block size (SZX 1024); larger ones go in blocks.
const unblockedNotification = 1024

// observer is one Observe registration (RFC 7641): on /mitigate (all of
// a client's requests or one) or on /config (RFC 9132 §4.5.2).
type observer struct {
	conn   mux.Conn
	token  string
	client service.Client
	config bool    // /config rather than /mitigate
	mid    *uint32 // /mitigate: nil means all of the client's requests
	c      string  // /mitigate: the 'c' Uri-Query
	sid    *uint32 // /config: the sid of the Uri-Path, nil if none
	udp    bool    // DTLS: notifications are NON, paced and may be RST

	// send serializes this observer's notifications; it guards the fields
	// below it.
	send     sync.Mutex
	seq      uint32
	lastSent time.Time
	pending  func() (note, bool) // the notification held back by pacing

	mids [recentMIDs]int32 // guarded by observers.mu
	nmid int
}

// note is one notification: a state (2.05 with a body) or the error that
// ends the observation (RFC 7641 §3.2), with its diagnostic.
type note struct {
	code   dots.Code
	body   *dots.Message
	diag   string
	maxAge *uint32
}

// observers keeps registrations and sends notifications: on every change of
// a client's requests or session configuration, and every NotifyInterval
// (RFC 9132 §4.4.2.1). Notifications are Non-confirmable over DTLS.
type observers struct {
	s      *Server
	mu     sync.Mutex
	byConn map[mux.Conn]map[string]*observer
}

func newObservers(s *Server) *observers {
	return &observers{s: s, byConn: map[mux.Conn]map[string]*observer{}}
}

// add registers (or re-registers) an observation and returns its first
// sequence number. A new registration on a session that holds
// Limits.MaxObservePerSession already (on /mitigate and /config together)
// is refused: 5.03, not registered.
func (o *observers) add(conn mux.Conn, token message.Token, ob *observer) (uint32, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.byConn[conn]
	if _, again := m[string(token)]; !again && len(m) >= o.s.clients().maxObservePerSession {
		return 0, dots.Errorf(dots.ServiceUnavailable, "this session holds %d Observe registrations, the most this server allows: "+
			"cancel one (GET with Observe 1, or observe all requests on /mitigate) before registering another", len(m))
	}
	if m == nil {
		m = map[string]*observer{}
		o.byConn[conn] = m
		conn.AddOnClose(func() { o.dropConn(conn) })
		// A request may be handled after its session closed: the close
		// callbacks have run then, without this one. go-coap cancels the
		// session's context before it runs them, so a live context here
		// means the callback will run.
		if conn.Context().Err() != nil {
			delete(o.byConn, conn)
			return 0, dots.Errorf(dots.ServiceUnavailable, "the session closed before the Observe registration was made")
		}
	}
	ob.conn, ob.token, ob.seq = conn, string(token), 2
	_, ob.udp = conn.(interface{ GetMessageID() int32 })
	m[ob.token] = ob
	return ob.seq, nil
}

func (o *observers) cancel(conn mux.Conn, token message.Token) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.byConn[conn], string(token))
}

// remove ends ob's registration unless it was replaced meanwhile.
func (o *observers) remove(ob *observer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if m := o.byConn[ob.conn]; m[ob.token] == ob {
		delete(m, ob.token)
	}
}

func (o *observers) registered(ob *observer) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.byConn[ob.conn][ob.token] == ob
}

// reset handles an RST from the client: when it answers one of the
// notifications, that observation is canceled (RFC 7641 §3.6).
func (o *observers) reset(conn mux.Conn, mid int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for tok, ob := range o.byConn[conn] {
		for i := 0; i < min(ob.nmid, recentMIDs); i++ {
			if ob.mids[i] == mid {
				delete(o.byConn[conn], tok)
				o.s.log.Debug("Observe registration canceled by an RST", "cuid", ob.client.CUID, "remote", conn.RemoteAddr().String())
				return
			}
		}
	}
}

func (o *observers) sentMID(ob *observer, mid int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ob.mids[ob.nmid%recentMIDs] = mid
	ob.nmid++
}

func (o *observers) dropConn(conn mux.Conn) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.byConn, conn)
}

// matching returns the observers of a client's mitigation requests (of
// mid, when given, and of all of them).
func (o *observers) matching(cuid string, mid *uint32) []*observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*observer
	for _, m := range o.byConn {
		for _, ob := range m {
			if !ob.config && ob.client.CUID == cuid && (mid == nil || ob.mid == nil || *ob.mid == *mid) {
				out = append(out, ob)
			}
		}
	}
	return out
}

func (o *observers) all() []*observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*observer
	for _, m := range o.byConn {
		for _, ob := range m {
			out = append(out, ob)
		}
	}
	return out
}

// changed is the service's stream of changes (Watch): it runs on the
// client's notification worker, so one client's notifications leave in the
// order the changes happened.
func (o *observers) changed(ev service.Event) {
	if ev.Periodic {
		for _, ob := range o.all() {
			if service.ShardOf(ob.client.CUID) == ev.Shard {
				o.refresh(ob)
			}
		}
		return
	}
	for _, r := range ev.Final {
		o.notifyFinal(r)
	}
	if len(ev.Changed) == 0 && len(ev.Final) == 0 {
		return
	}
	for _, ob := range o.matching(ev.CUID, nil) {
		if ob.mid == nil {
			o.refresh(ob)
			continue
		}
		for _, r := range ev.Changed {
			if r.MID == *ob.mid {
				o.sendRecord(ob, r)
			}
		}
		for _, r := range ev.Final {
			if r.MID == *ob.mid {
				o.refresh(ob) // the request is gone: 4.04 ends the observation
			}
		}
	}
}

// configChanged notifies the observers of a client's session
// configuration (RFC 9132 §4.5.2), on every session of the client.
func (o *observers) configChanged(cuid string) {
	o.mu.Lock()
	var obs []*observer
	for _, m := range o.byConn {
		for _, ob := range m {
			if ob.config && ob.client.CUID == cuid {
				obs = append(obs, ob)
			}
		}
	}
	o.mu.Unlock()
	for _, ob := range obs {
		o.refresh(ob)
	}
}

// sendRecord notifies the state of one request as the change left it.
func (o *observers) sendRecord(ob *observer, r *mitigation.Record) {
	o.notify(ob, func() (note, bool) {
		sc := r.StatusScope(o.s.now(), ob.c != "n", ob.c != "c")
		return note{code: dots.Content, body: &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{sc}}}}, true
	})
}

// refresh notifies the observed resource's current state, rendered when
// the notification leaves.
func (o *observers) refresh(ob *observer) {
	o.notify(ob, func() (note, bool) { return o.render(ob) })
}

func (o *observers) render(ob *observer) (note, bool) {
	if ob.config {
		m, err := o.s.configMessage(ob.client, ob.sid)
		if err != nil {
			return endNote(err, "the session configuration is gone"), true
		}
		return note{code: dots.Content, body: m, maxAge: &o.s.opts.ConfigMaxAge}, true
	}
	m, err := o.s.statusMessage(ob.client, ob.mid, ob.c)
	if err != nil {
		if ob.mid == nil {
			return note{}, false // no request left: nothing to tell
		}
		// The request is gone: end the observation with 4.04 (RFC 7641 §3.2).
		return endNote(err, fmt.Sprintf("mitigation request %d is gone", *ob.mid)), true
	}
	return note{code: dots.Content, body: m}, true
}

// endNote is the 4.04 that ends an observation, with a diagnostic.
func endNote(err error, what string) note {
	diag := what
	var pe *dots.Error
	if errors.As(err, &pe) && pe.Diag != "" {
		diag = pe.Diag
	}
	return note{code: dots.NotFound, diag: diag + ": the observation ends"}
}

// notifyFinal tells observers the last state of a request that is about to
// vanish (status 6, attack-mitigation-terminated).
func (o *observers) notifyFinal(r *mitigation.Record) {
	for _, ob := range o.matching(r.CUID, &r.MID) {
		if ob.mid != nil {
			o.notify(ob, func() (note, bool) {
				sc := r.StatusScope(o.s.now(), true, true)
				return note{code: dots.Content, body: &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{sc}}}}, true
			})
		}
	}
}

// notify sends the notification render gives, or holds it back when the
// observer had one less than notifyGap ago over DTLS: flush sends it
// later, and a newer one replaces it meanwhile, so the client still gets
// the latest state (RFC 7641 §4.5.1, §4.5.2).
func (o *observers) notify(ob *observer, render func() (note, bool)) {
	ob.send.Lock()
	defer ob.send.Unlock()
	now := o.s.now()
	if ob.udp && !ob.lastSent.IsZero() && now.Sub(ob.lastSent) < notifyGap {
		ob.pending = render
		return
	}
	o.deliverLocked(ob, render, now)
}

// flush sends the notifications held back whose time has come. It runs on
// every tick of the server loop.
func (o *observers) flush(now time.Time) {
	for _, ob := range o.all() {
		ob.send.Lock()
		if ob.pending != nil && now.Sub(ob.lastSent) >= notifyGap {
			o.deliverLocked(ob, ob.pending, now)
		}
		ob.send.Unlock()
	}
}

// deliverLocked renders and writes one notification; ob.send is held.
func (o *observers) deliverLocked(ob *observer, render func() (note, bool), now time.Time) {
	ob.pending = nil
	if !o.registered(ob) {
		return // canceled meanwhile
	}
	n, ok := render()
	if !ok {
		return
	}
	ob.lastSent = now
	ob.seq++
	o.write(ob, n, ob.seq)
	if n.code != dots.Content {
		o.remove(ob) // a 4.xx/5.xx notification ends the observation
	}
}

func (o *observers) write(ob *observer, n note, seq uint32) {
	conn := ob.conn
	msg := conn.AcquireMessage(context.Background())
	defer conn.ReleaseMessage(msg)
	msg.SetCode(codes.Code(n.code))
	msg.SetToken(message.Token(ob.token))
	msg.SetObserve(seq & 0xffffff)
	size := 0
	switch {
	case n.body != nil:
		b, err := dots.Encode(n.body)
		if err != nil {
			return
		}
		size = len(b)
		msg.SetContentFormat(message.MediaType(dots.ContentFormat))
		msg.SetBody(bytes.NewReader(b))
	case n.diag != "":
		size = len(n.diag)
		msg.SetContentFormat(message.TextPlain)
		msg.SetBody(strings.NewReader(n.diag))
	}
	if n.maxAge != nil {
		msg.SetOptionUint32(message.MaxAge, *n.maxAge)
	}
	var err error
	if u, ok := conn.(*udpClient.Conn); ok && size <= unblockedNotification {
		// Written as is, so that its message ID is known: go-coap's
		// block-wise layer would give the copy it sends a new one, and an
		// RST names the notification by message ID alone.
		mid := u.GetMessageID()
		msg.SetType(message.NonConfirmable)
		msg.SetMessageID(mid)
		o.sentMID(ob, mid)
		err = u.Session().WriteMessage(msg)
	} else {
		if ob.udp {
			msg.SetType(message.NonConfirmable) // sent in blocks (RFC 7959 §2.3)
		}
		err = conn.WriteMessage(msg)
	}
	if err != nil {
		o.s.log.Debug("notification not sent", "cuid", ob.client.CUID, "err", err)
	}
}
