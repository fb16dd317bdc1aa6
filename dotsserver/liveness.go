package dotsserver

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/session"
)

// connState is one signal-channel session (one (D)TLS association).
type connState struct {
	conn       mux.Conn
	udp        bool
	peer       *peer
	lastRx     time.Time
	lastHBSent time.Time
	replaced   bool // closed for a newer session of its client: not counted again
}

// clientState is what the server knows of a client across its sessions:
// the signal channel is lost only when nothing at all arrived from the
// client for missing-hb-allowed heartbeat intervals (RFC 9132 §4.7).
type clientState struct {
	lastRx, lastHBRx time.Time
	lost             bool
}

type liveness struct {
	s        *Server
	mu       sync.Mutex
	conns    map[mux.Conn]*connState
	clients  map[string]*clientState
	sessions map[string]int // identified sessions by cuid
}

func newLiveness(s *Server) *liveness {
	return &liveness{s: s, conns: map[mux.Conn]*connState{}, clients: map[string]*clientState{}, sessions: map[string]int{}}
}

func (l *liveness) opened(conn mux.Conn, udp bool) {
	l.mu.Lock()
	l.conns[conn] = &connState{conn: conn, udp: udp, lastRx: l.s.now()}
	l.mu.Unlock()
	conn.AddOnClose(func() {
		l.mu.Lock()
		if cs := l.conns[conn]; cs != nil && cs.peer != nil {
			if l.sessions[cs.peer.cuid]--; l.sessions[cs.peer.cuid] <= 0 {
				delete(l.sessions, cs.peer.cuid)
			}
		}
		delete(l.conns, conn)
		l.mu.Unlock()
	})
}

// sessionCapError refuses a session beyond Limits.MaxSessionsPerClient.
type sessionCapError struct {
	cuid  string
	limit int
}

func (e *sessionCapError) Error() string {
	return fmt.Sprintf("client %s already has %d signal-channel sessions, the most this server allows: this session is closed; end another session first", e.cuid, e.limit)
}

// received notes any message from the peer (requests and responses alike).
func (l *liveness) received(conn mux.Conn, _ *pool.Message) {
	now := l.s.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := l.conns[conn]
	if cs == nil {
		return
	}
	cs.lastRx = now
	if cs.peer != nil {
		l.clientLocked(cs.peer.cuid).seen(now)
	}
}

func (c *clientState) seen(now time.Time) {
	c.lastRx = now
	c.lost = false
}

func (l *liveness) clientLocked(cuid string) *clientState {
	c := l.clients[cuid]
	if c == nil {
		c = &clientState{}
		l.clients[cuid] = c
	}
	return c
}

func (l *liveness) heartbeat(conn mux.Conn, _ bool) {
	now := l.s.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if cs := l.conns[conn]; cs != nil && cs.peer != nil {
		c := l.clientLocked(cs.peer.cuid)
		c.seen(now)
		c.lastHBRx = now
	}
}

// identify finds who a connection's client is: by its PSK identity or by
// its certificate.
func (l *liveness) identify(conn mux.Conn) (*peer, error) {
	if p, ok, err := l.s.pskPeer(conn.NetConn()); ok {
		return p, err
	}
	leaf, transport, err := peerLeaf(conn.NetConn())
	if err != nil {
		return nil, err
	}
	return identify(l.s.clients().domains, leaf, transport)
}

// peer returns the authenticated identity of a connection, computing it once.
func (l *liveness) peer(conn mux.Conn) (*peer, error) {
	l.mu.Lock()
	cs := l.conns[conn]
	if cs != nil && cs.peer != nil {
		p := cs.peer
		l.mu.Unlock()
		return p, nil
	}
	l.mu.Unlock()
	p, err := l.identify(conn)
	if err != nil {
		return nil, err
	}
	now := l.s.now()
	values := l.s.svc.SessionValues([]string{p.cuid})[p.cuid]
	var replaced *connState
	var silent time.Duration
	l.mu.Lock()
	if cs != nil && cs.peer != nil {
		p = cs.peer // identified meanwhile by a concurrent request
		l.mu.Unlock()
		return p, nil
	}
	// The session may have closed while the certificate was looked at: its
	// close callback found no peer to uncount, so it is not counted now.
	if cs != nil && l.conns[conn] == cs && !cs.replaced {
		if n := l.sessions[p.cuid]; n >= l.s.clients().maxSessionsPerClient {
			if replaced = l.replaceableLocked(p.cuid, now, values); replaced == nil {
				l.mu.Unlock()
				return nil, &sessionCapError{cuid: p.cuid, limit: n}
			}
			replaced.peer, replaced.replaced = nil, true // uncounted here, not again when it closes
			l.sessions[p.cuid]--
			silent = now.Sub(replaced.lastRx)
		}
		cs.peer = p
		l.sessions[p.cuid]++
	}
	l.clientLocked(p.cuid).seen(now)
	l.mu.Unlock()
	if replaced != nil {
		l.s.rlog.warn("session-replaced:"+p.cuid, "client at its session limit: its longest-silent session, which missed a heartbeat, is closed for the new one",
			"cuid", p.cuid, "closed", replaced.conn.RemoteAddr().String(), "silent", silent.String(), "new", conn.RemoteAddr().String())
		_ = replaced.conn.Close()
	}
	l.s.log.Info("client session", "cuid", p.cuid, "domain", p.domain.Name, "transport", p.transport, "remote", conn.RemoteAddr())
	return p, nil
}

// run drives heartbeats, loss detection, lifetimes and periodic notifications.
func (l *liveness) run(stop <-chan struct{}) {
	ticks := l.s.opts.Ticks
	if ticks == nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		ticks = t.C
	}
	lastNotify := l.s.now()
	l.mu.Lock()
	// Clients known from the store count as seen at start-up, so a client
	// that never comes back still triggers its preconfigured requests.
	for _, r := range l.s.svc.KnownClients() {
		l.clientLocked(r).seen(l.s.now())
	}
	l.mu.Unlock()
	for {
		select {
		case <-stop:
			return
		case <-ticks:
		}
		now := l.s.now()
		l.s.svc.Tick()
		l.sweep(now)
		l.s.obs.flush(now)
		if now.Sub(lastNotify) >= l.s.opts.NotifyInterval {
			lastNotify = now
			// Through the effect queue, so it cannot overtake the
			// notifications of changes made before it.
			l.s.svc.NotifyAll()
		}
	}
}

func (l *liveness) sweep(now time.Time) {
	type hb struct {
		cs     *connState
		status bool
	}
	var send []hb
	var lost []string
	var dead []mux.Conn
	l.mu.Lock()
	cuids := make([]string, 0, len(l.clients))
	for cuid := range l.clients {
		cuids = append(cuids, cuid)
	}
	l.mu.Unlock()
	vals := l.s.svc.SessionValues(cuids)
	l.mu.Lock()
	for cuid, c := range l.clients {
		v, ok := vals[cuid]
		if !ok {
			continue // appeared since the snapshot: next sweep
		}
		if !c.lost && session.Lost(c.lastRx, now, v) {
			c.lost = true
			lost = append(lost, cuid)
		}
	}
	for conn, cs := range l.conns {
		if cs.peer == nil {
			if now.Sub(cs.lastRx) > time.Minute {
				dead = append(dead, conn)
			}
			continue
		}
		v := vals[cs.peer.cuid]
		if session.Lost(cs.lastRx, now, v) {
			dead = append(dead, conn)
			continue
		}
		if session.HeartbeatDue(cs.lastHBSent, now, v) {
			cs.lastHBSent = now
			c := l.clients[cs.peer.cuid]
			send = append(send, hb{cs, c != nil && session.PeerHBStatus(c.lastHBRx, now, v)})
		}
	}
	l.mu.Unlock()
	for _, cuid := range lost {
		l.s.log.Warn("signal channel lost: nothing received from the client for missing-hb-allowed heartbeat intervals", "cuid", cuid)
		l.s.svc.SessionLost(cuid)
	}
	for _, conn := range dead {
		_ = conn.Close()
	}
	for _, h := range send {
		go l.sendHeartbeat(h.cs, h.status)
	}
}

var hbPath = "/.well-known/dots/hb"

// sendHeartbeat sends the server's NON PUT /hb (RFC 9132 §4.7).
func (l *liveness) sendHeartbeat(cs *connState, status bool) {
	body := dots.MustEncode(&dots.Message{Heartbeat: &dots.Heartbeat{PeerHBStatus: dots.Ptr(status)}})
	// An unanswered heartbeat is abandoned well before the next one is due
	// (heartbeat-interval is at least 15 s by default).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := cs.conn.NewPutRequest(ctx, hbPath, message.MediaType(dots.ContentFormat), bytes.NewReader(body))
	if err != nil {
		return
	}
	defer cs.conn.ReleaseMessage(req)
	if cs.udp {
		req.SetType(message.NonConfirmable)
	}
	resp, err := cs.conn.Do(req)
	if hb := l.s.opts.Hooks.Heartbeat; hb != nil {
		hb(transportOf(cs.udp), err == nil)
	}
	if err != nil {
		return
	}
	if resp.Code() != codes.Changed {
		l.s.log.Debug("heartbeat answered", "code", resp.Code())
	}
	cs.conn.ReleaseMessage(resp)
}
