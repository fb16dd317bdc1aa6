package dotsserver

import (
	"bytes"
	"context"
	"sync"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/service"
)

// observer is one Observe registration (RFC 7641) on /mitigate.
type observer struct {
	conn   mux.Conn
	token  string
	client service.Client
	mid    *uint32 // nil: all of the client's requests
	c      string
	seq    uint32
}

// observers keeps registrations and sends notifications: on every change of
// a client's requests and every NotifyInterval (RFC 9132 §4.4.2.1).
// Notifications are Non-confirmable over DTLS.
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
// Limits.MaxObservePerSession already is refused: 5.03, not registered.
func (o *observers) add(conn mux.Conn, token message.Token, client service.Client, mid *uint32, c string) (uint32, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m := o.byConn[conn]
	if _, again := m[string(token)]; !again && len(m) >= o.s.limits.MaxObservePerSession {
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
	ob := &observer{conn: conn, token: string(token), client: client, mid: mid, c: c, seq: 2}
	m[ob.token] = ob
	return ob.seq, nil
}

func (o *observers) cancel(conn mux.Conn, token message.Token) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.byConn[conn], string(token))
}

func (o *observers) dropConn(conn mux.Conn) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.byConn, conn)
}

func (o *observers) matching(cuid string, mid *uint32) []*observer {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*observer
	for _, m := range o.byConn {
		for _, ob := range m {
			if ob.client.CUID == cuid && (mid == nil || ob.mid == nil || *ob.mid == *mid) {
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

// sendRecord notifies the state of one request as the change left it.
func (o *observers) sendRecord(ob *observer, r *mitigation.Record) {
	sc := r.StatusScope(o.s.now(), ob.c != "n", ob.c != "c")
	o.send(ob, dots.Content, &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{sc}}})
}

func (o *observers) refresh(ob *observer) {
	m, err := o.s.statusMessage(ob.client, ob.mid, ob.c)
	if err != nil {
		if ob.mid != nil {
			// The request is gone: end the observation with 4.04 (RFC 7641 §3.2).
			o.send(ob, dots.NotFound, nil)
			o.cancel(ob.conn, message.Token(ob.token))
		}
		return
	}
	o.send(ob, dots.Content, m)
}

// notifyFinal tells observers the last state of a request that is about to
// vanish (status 6, attack-mitigation-terminated).
func (o *observers) notifyFinal(r *mitigation.Record) {
	sc := r.StatusScope(o.s.now(), true, true)
	m := &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{sc}}}
	for _, ob := range o.matching(r.CUID, &r.MID) {
		if ob.mid != nil {
			o.send(ob, dots.Content, m)
		}
	}
}

func (o *observers) send(ob *observer, code dots.Code, m *dots.Message) {
	o.mu.Lock()
	ob.seq++
	seq := ob.seq
	o.mu.Unlock()
	conn := ob.conn
	msg := conn.AcquireMessage(context.Background())
	defer conn.ReleaseMessage(msg)
	msg.SetCode(codes.Code(code))
	msg.SetToken(message.Token(ob.token))
	msg.SetObserve(seq & 0xffffff)
	if m != nil {
		b, err := dots.Encode(m)
		if err != nil {
			return
		}
		msg.SetContentFormat(message.MediaType(dots.ContentFormat))
		msg.SetBody(bytes.NewReader(b))
	}
	if u, ok := conn.(interface{ GetMessageID() int32 }); ok {
		msg.SetType(message.NonConfirmable)
		msg.SetMessageID(u.GetMessageID())
	}
	if err := conn.WriteMessage(msg); err != nil {
		o.s.log.Debug("notification not sent", "cuid", ob.client.CUID, "err", err)
	}
}
