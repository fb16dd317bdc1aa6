package dotsserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/service"
)

// request is a parsed signal-channel request.
type request struct {
	conn     mux.Conn
	msg      *mux.Message
	peer     *peer
	resource string            // "mitigate", "config" or "hb"
	params   map[string]string // cuid, mid, sid, cdid
	order    []string
}

// serveCOAP is the single entry point of the signal channel.
func (s *Server) serveCOAP(w mux.ResponseWriter, r *mux.Message) {
	if r.Code() == codes.Empty {
		if r.Type() == message.Reset {
			s.obs.reset(w.Conn(), r.MessageID())
		}
		return
	}
	if !isRequest(r.Code()) {
		s.rejectStray(w, r) // a response no exchange of the server claimed (stray.go)
		return
	}
	if s.opts.Hooks.Request != nil {
		defer s.observeRequest(w, r, s.now()) // after recovered: sees its 5.00
	}
	defer s.recovered(w, r)
	req, err := s.parse(w.Conn(), r)
	if err == nil {
		err = s.dispatch(w, req)
	}
	if err != nil {
		s.replyError(w, err)
	}
}

func (s *Server) parse(conn mux.Conn, r *mux.Message) (*request, error) {
	p, err := s.live.peer(conn)
	var ce *sessionCapError
	if errors.As(err, &ce) {
		return nil, &dots.Error{Code: dots.ServiceUnavailable, Diag: ce.Error()}
	}
	if err != nil {
		host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
		s.rlog.warn("unauthorized:"+host, "request refused", "remote", conn.RemoteAddr().String(), "err", err)
		return nil, &dots.Error{Code: dots.Unauthorized, Diag: err.Error()}
	}
	var segs []string
	for _, o := range r.Options() {
		if o.ID == message.URIPath {
			segs = append(segs, string(o.Value))
		}
	}
	if len(segs) < 3 || segs[0] != ".well-known" || segs[1] != "dots" {
		return nil, dots.Errorf(dots.NotFound, "no such resource: DOTS signal resources live under /.well-known/dots")
	}
	req := &request{conn: conn, msg: r, peer: p, resource: segs[2], params: map[string]string{}}
	for _, seg := range segs[3:] {
		k, v, ok := strings.Cut(seg, "=")
		if !ok || v == "" {
			return nil, dots.Errorf(dots.BadRequest, "Uri-Path segment %q must be name=value with a non-empty value", seg)
		}
		if _, dup := req.params[k]; dup {
			return nil, dots.Errorf(dots.BadRequest, "Uri-Path parameter %q appears twice", k)
		}
		req.params[k] = v
		req.order = append(req.order, k)
	}
	return req, nil
}

func (s *Server) dispatch(w mux.ResponseWriter, req *request) error {
	if r, ttl, ok := s.redirectFor(req); ok {
		return replyRedirect(w, r, ttl)
	}
	code := req.msg.Code()
	switch req.resource {
	case "mitigate":
		if err := s.checkMitigatePath(req); err != nil {
			return err
		}
		switch code {
		case codes.PUT:
			return s.putMitigation(w, req)
		case codes.GET:
			return s.getMitigation(w, req)
		case codes.DELETE:
			return s.deleteMitigation(w, req)
		}
	case "config":
		if _, ok := req.params["cuid"]; ok {
			return dots.Errorf(dots.BadRequest, "cuid must not be used with /config")
		}
		switch code {
		case codes.GET:
			return s.getConfig(w, req)
		case codes.PUT:
			return s.putConfig(w, req)
		case codes.DELETE:
			return s.deleteConfig(w, req)
		}
	case "hb":
		if len(req.params) > 0 {
			return dots.Errorf(dots.BadRequest, "heartbeats carry no Uri-Path parameters (cuid, cdid and mid are not allowed)")
		}
		if code == codes.PUT {
			return s.putHeartbeat(w, req)
		}
	default:
		return dots.Errorf(dots.NotFound, "no such DOTS resource %q (known: mitigate, config, hb)", req.resource)
	}
	return dots.Errorf(dots.MethodNotAllowed, "%s is not allowed on /%s", code, req.resource)
}

// checkMitigatePath validates cuid (and cdid, mid) for /mitigate and the
// binding of the cuid to the client's certificate (RFC 9132 §4.4.1).
func (s *Server) checkMitigatePath(req *request) error {
	for _, k := range req.order {
		switch k {
		case "cdid":
			// Only a server-domain gateway may insert cdid; from a client it is ignored.
		case "cuid", "mid":
		default:
			return dots.Errorf(dots.BadRequest, "unknown Uri-Path parameter %q on /mitigate", k)
		}
	}
	cuid, ok := req.params["cuid"]
	if !ok {
		return dots.Errorf(dots.BadRequest, "cuid is mandatory in the Uri-Path of /mitigate")
	}
	if v, ok := req.params["mid"]; ok {
		if _, err := strconv.ParseUint(v, 10, 32); err != nil {
			return dots.Errorf(dots.BadRequest, "mid %q is not a uint32", v)
		}
	}
	return s.svc.CheckCUID(req.peer.cuid, req.peer.spki, cuid)
}

// client is the service's view of the request's client, speaking as cuid.
func (req *request) client(cuid string) service.Client {
	return service.Client{CUID: cuid, Domain: req.peer.domain.serviceDomain()}
}

func (req *request) mid() (uint32, bool) {
	v, ok := req.params["mid"]
	if !ok {
		return 0, false
	}
	n, _ := strconv.ParseUint(v, 10, 32)
	return uint32(n), true
}

func (req *request) body() (*dots.Message, error) {
	if cf, err := req.msg.ContentFormat(); err == nil && cf != dots.ContentFormat {
		return nil, dots.Errorf(dots.UnsupportedFormat, "Content-Format %d is not application/dots+cbor (271)", cf)
	}
	b, err := req.msg.ReadBody()
	if err != nil {
		return nil, dots.Errorf(dots.BadRequest, "the request body could not be read")
	}
	return dots.Decode(b)
}

func (s *Server) putMitigation(w mux.ResponseWriter, req *request) error {
	mid, ok := req.mid()
	if !ok {
		return dots.Errorf(dots.BadRequest, "mid is mandatory in the Uri-Path of a PUT")
	}
	m, err := req.body()
	if err != nil {
		return err
	}
	mr, err := dots.ParseMitigationRequest(m)
	if err != nil {
		return err
	}
	efficacy := false
	if v, err := req.msg.Options().GetBytes(message.IfMatch); err == nil && len(v) == 0 {
		efficacy = true
	}
	res, err := s.svc.PutMitigation(context.Background(), req.client(req.params["cuid"]), service.PutRequest{MID: mid, Request: mr, Efficacy: efficacy})
	if err != nil {
		return err
	}
	if res.Code == 0 {
		return nil // efficacy update of an unknown mid: silently ignored
	}
	sc := dots.Scope{MID: dots.Ptr(mid), Lifetime: dots.Ptr(res.Mitigation.Lifetime), ConflictInformation: res.Conflict, Note: res.Note()}
	return reply(w, res.Code, &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{sc}}})
}

func (s *Server) deleteMitigation(w mux.ResponseWriter, req *request) error {
	mid, ok := req.mid()
	if !ok {
		return dots.Errorf(dots.BadRequest, "mid is mandatory in the Uri-Path of a DELETE")
	}
	if err := s.svc.WithdrawMitigation(req.client(req.params["cuid"]), mid); err != nil {
		return err
	}
	return reply(w, dots.Deleted, nil)
}

func (s *Server) getMitigation(w mux.ResponseWriter, req *request) error {
	cuid := req.params["cuid"]
	var midp *uint32
	if mid, ok := req.mid(); ok {
		midp = &mid
	}
	c, err := contentQuery(req.msg)
	if err != nil {
		return err
	}
	if obs, err := req.msg.Observe(); err == nil {
		if obs == 1 {
			s.obs.cancel(req.conn, req.msg.Token())
		} else if obs == 0 {
			m, err := s.statusMessage(req.client(cuid), midp, c)
			if err != nil {
				return err
			}
			seq, err := s.obs.add(req.conn, req.msg.Token(), &observer{client: req.client(cuid), mid: midp, c: c})
			if err != nil {
				s.rlog.warn("observe:"+cuid, "Observe registration refused: the session has the most allowed", "cuid", cuid,
					"limit", s.clients().maxObservePerSession, "remote", req.conn.RemoteAddr().String())
				return err
			}
			if err := reply(w, dots.Content, m); err != nil {
				return err
			}
			w.Message().SetObserve(seq)
			return nil
		}
	}
	m, err := s.statusMessage(req.client(cuid), midp, c)
	if err != nil {
		return err
	}
	return reply(w, dots.Content, m)
}

// contentQuery parses the 'c' Uri-Query (RFC 9132 §4.4.2): c, n or a.
func contentQuery(r *mux.Message) (string, error) {
	qs, _ := r.Options().Queries()
	c := "a"
	for _, q := range qs {
		k, v, _ := strings.Cut(q, "=")
		if k != "c" {
			return "", dots.Errorf(dots.BadRequest, "unknown Uri-Query %q (only c=c|n|a)", q)
		}
		if v != "c" && v != "n" && v != "a" {
			return "", dots.Errorf(dots.BadRequest, "Uri-Query c=%q: want c, n or a", v)
		}
		c = v
	}
	return c, nil
}

// statusMessage renders one or all of a client's requests (4.04 if none).
func (s *Server) statusMessage(c service.Client, mid *uint32, query string) (*dots.Message, error) {
	var recs []*mitigation.Record
	if mid != nil {
		r, err := s.svc.Mitigation(c, *mid)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	} else {
		var err error
		if recs, err = s.svc.Mitigations(c); err != nil {
			return nil, err
		}
	}
	now := s.now()
	scopes := make([]dots.Scope, 0, len(recs))
	for _, r := range recs {
		scopes = append(scopes, r.StatusScope(now, query != "n", query != "c"))
	}
	return &dots.Message{MitigationScope: &dots.MitigationScope{Scope: scopes}}, nil
}

func (s *Server) sid(req *request) (uint32, bool, error) {
	for _, k := range req.order {
		if k != "sid" {
			return 0, false, dots.Errorf(dots.BadRequest, "unknown Uri-Path parameter %q on /config", k)
		}
	}
	v, ok := req.params["sid"]
	if !ok {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, false, dots.Errorf(dots.BadRequest, "sid %q is not a uint32", v)
	}
	return uint32(n), true, nil
}

// getConfig answers GET /config, with Observe 0 registering for its
// changes and Observe 1 canceling (RFC 9132 §4.5.2).
func (s *Server) getConfig(w mux.ResponseWriter, req *request) error {
	sid, withSID, err := s.sid(req)
	if err != nil {
		return err
	}
	var sidp *uint32
	if withSID {
		sidp = &sid
	}
	client := req.client(req.peer.cuid)
	m, err := s.configMessage(client, sidp)
	if err != nil {
		return err
	}
	obs, oerr := req.msg.Observe()
	if oerr == nil && obs == 1 {
		s.obs.cancel(req.conn, req.msg.Token())
	}
	var seq uint32
	observed := oerr == nil && obs == 0
	if observed {
		if seq, err = s.obs.add(req.conn, req.msg.Token(), &observer{client: client, config: true, sid: sidp}); err != nil {
			s.rlog.warn("observe:"+client.CUID, "Observe registration refused: the session has the most allowed", "cuid", client.CUID,
				"limit", s.clients().maxObservePerSession, "remote", req.conn.RemoteAddr().String())
			return err
		}
	}
	if err := reply(w, dots.Content, m); err != nil {
		return err
	}
	if observed {
		w.Message().SetObserve(seq)
	}
	w.Message().SetOptionUint32(message.MaxAge, s.opts.ConfigMaxAge)
	return nil
}

// configMessage renders a client's session configuration; with a sid, 4.04
// unless it is the current one.
func (s *Server) configMessage(c service.Client, sid *uint32) (*dots.Message, error) {
	cfg := s.svc.SessionConfig(c)
	if sid != nil && *sid != cfg.SID {
		return nil, dots.Errorf(dots.NotFound, "no session configuration with sid %d (current sid %d)", *sid, cfg.SID)
	}
	return s.opts.Ranges.Describe(cfg, sid != nil), nil
}

func (s *Server) putConfig(w mux.ResponseWriter, req *request) error {
	sid, ok, err := s.sid(req)
	if err != nil {
		return err
	}
	if !ok {
		return dots.Errorf(dots.BadRequest, "sid is mandatory in the Uri-Path of PUT /config")
	}
	m, err := req.body()
	if err != nil {
		return err
	}
	code, err := s.svc.SetSessionConfig(req.client(req.peer.cuid), sid, m)
	if err != nil {
		return err
	}
	s.obs.configChanged(req.peer.cuid)
	if err := reply(w, code, nil); err != nil {
		return err
	}
	w.Message().SetOptionUint32(message.MaxAge, s.opts.ConfigMaxAge)
	return nil
}

func (s *Server) deleteConfig(w mux.ResponseWriter, req *request) error {
	if _, _, err := s.sid(req); err != nil {
		return err
	}
	if err := s.svc.ResetSessionConfig(req.client(req.peer.cuid)); err != nil {
		return err
	}
	s.obs.configChanged(req.peer.cuid)
	return reply(w, dots.Deleted, nil)
}

func (s *Server) putHeartbeat(w mux.ResponseWriter, req *request) error {
	m, err := req.body()
	if err != nil {
		return err
	}
	if m.Heartbeat == nil || m.Heartbeat.PeerHBStatus == nil || m.MitigationScope != nil || m.SignalConfig != nil {
		return dots.Errorf(dots.BadRequest, "heartbeat body must be ietf-dots-signal-channel:heartbeat with peer-hb-status")
	}
	s.live.heartbeat(req.conn, *m.Heartbeat.PeerHBStatus)
	return reply(w, dots.Changed, nil)
}

// reply sets a DOTS response; m nil means no payload.
func reply(w mux.ResponseWriter, code dots.Code, m *dots.Message) error {
	if m == nil {
		return w.SetResponse(codes.Code(code), message.AppCBOR, nil)
	}
	b, err := dots.Encode(m)
	if err != nil {
		return err
	}
	if err := w.SetResponse(codes.Code(code), message.MediaType(dots.ContentFormat), bytes.NewReader(b)); err != nil {
		return err
	}
	if code == dots.Content {
		// RFC 9132 §4.4.2: a status sent in blocks is dynamic content and
		// carries an ETag, so a client can tell the blocks of one answer.
		sum := sha256.Sum256(b)
		w.Message().SetOptionBytes(message.ETag, sum[:8])
	}
	return nil
}

// replyError answers a failure: a plain-text diagnostic, or the DOTS body
// a 4.09 requires; 5.03 carries Max-Age (RFC 9132 §4.4.1).
func (s *Server) replyError(w mux.ResponseWriter, err error) {
	var pe *dots.Error
	if !errors.As(err, &pe) {
		s.log.Error("internal error", "err", err)
		pe = &dots.Error{Code: dots.InternalServerError, Diag: "internal error: the request was not processed"}
	}
	if pe.Body != nil {
		_ = reply(w, pe.Code, pe.Body)
		if pe.Code == dots.ServiceUnavailable {
			// RFC 9133 §3.2.1: a failed ACL update is retried after Max-Age.
			w.Message().SetOptionUint32(message.MaxAge, 5)
		}
		return
	}
	diag := pe.Diag
	if diag == "" {
		diag = fmt.Sprint(pe.Code)
	}
	_ = w.SetResponse(codes.Code(pe.Code), message.TextPlain, strings.NewReader(diag))
	if pe.Code == dots.ServiceUnavailable {
		w.Message().SetOptionUint32(message.MaxAge, 5)
	}
}
