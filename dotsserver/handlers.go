package dotsserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/dotsserver/session"
	"github.com/levee-dots/levee/store"
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
		return
	}
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
	if err != nil {
		s.log.Warn("request refused", "remote", conn.RemoteAddr(), "err", err)
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
	return s.checkCUID(req.peer, cuid)
}

func (s *Server) checkCUID(p *peer, cuid string) error {
	s.mu.Lock()
	derivedOwner, derivedBound := s.bindings[p.cuid]
	owner, bound := s.bindings[cuid]
	s.mu.Unlock()
	switch {
	case cuid == p.cuid && (!derivedBound || derivedOwner == p.spki):
		if !derivedBound {
			return s.bind(cuid, p.spki)
		}
		return nil
	case cuid == p.cuid:
		// The cuid derived from this certificate already belongs to another
		// identity: tell the client to pick another one (RFC 9132 §4.4.1.3).
		ci := &dots.ConflictInformation{ConflictCause: dots.Ptr(dots.CauseCUIDCollision)}
		return &dots.Error{Code: dots.Conflict, Diag: "cuid collision: choose another cuid",
			Body: &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{{ConflictInformation: ci}}}}}
	case derivedBound && derivedOwner != p.spki && (!bound || owner == p.spki):
		// After a collision the client may use a cuid of its own making.
		if !bound {
			return s.bind(cuid, p.spki)
		}
		return nil
	}
	return dots.Errorf(dots.Forbidden, "cuid %s is not bound to this client's certificate (expected %s)", cuid, p.cuid)
}

func (s *Server) bind(cuid, spki string) error {
	s.mu.Lock()
	if cur, ok := s.bindings[cuid]; ok && cur != spki {
		s.mu.Unlock()
		return dots.Errorf(dots.Forbidden, "cuid %s is bound to another client", cuid)
	}
	s.bindings[cuid] = spki
	done := s.j.add([]store.Op{{Bucket: bucketBindings, Key: cuid, Value: []byte(spki)}})
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return &dots.Error{Code: dots.ServiceUnavailable, Diag: "could not persist the cuid binding", Err: err}
	}
	return nil
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
		return nil, dots.Errorf(dots.BadRequest, "reading the body: %v", err)
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
	cuid := req.params["cuid"]
	if len(mr.Scope.ACLList) > 0 {
		return s.refuseACLControl(cuid, mr)
	}
	if len(mr.Scope.AliasName) > 0 {
		return dots.Errorf(dots.BadRequest, "alias-name %q is unknown: aliases are created over the data channel, which this server does not offer yet", mr.Scope.AliasName[0])
	}
	prefixes, err := s.ownedTargets(req.peer.domain, mr)
	if err != nil {
		return err
	}
	if mr.Trigger {
		d := diversionOf(&mitigation.Record{Key: mitigation.Key{CUID: cuid, MID: mid}, Domain: req.peer.domain.Name,
			Prefixes: prefixes, Scope: mr.Scope})
		if err := s.orch.Check(d); err != nil {
			return dots.Errorf(dots.Forbidden, "refused by the mitigator's policy: %v", err)
		}
	}
	note := ""
	if !s.orch.Configured() && mr.Trigger {
		note = divert.NoMitigator
	}
	s.mu.Lock()
	res, err := s.book.Put(mitigation.PutRequest{CUID: cuid, Domain: req.peer.domain.Name, MID: mid, Req: mr,
		Prefixes: prefixes, Efficacy: efficacy, Note: note}, s.now())
	if err != nil {
		s.mu.Unlock()
		return err
	}
	done := s.commitLocked(res)
	s.mu.Unlock()
	if res.Code == 0 {
		return nil // efficacy update of an unknown mid: silently ignored
	}
	if err := done.wait(); err != nil {
		s.log.Error("persisting mitigation", "cuid", cuid, "mid", mid, "err", err)
		return &dots.Error{Code: dots.ServiceUnavailable, Diag: "the request could not be stored; retry", Err: err}
	}
	if res.Code == dots.Created {
		s.log.Info("mitigation accepted", "cuid", cuid, "mid", mid, "domain", req.peer.domain.Name, "targets", prefixes, "lifetime", res.Record.Lifetime, "trigger", res.Record.Trigger)
	}
	sc := dots.Scope{MID: dots.Ptr(mid), Lifetime: dots.Ptr(res.Record.Lifetime), ConflictInformation: res.Conflict, Note: res.Record.Note}
	return reply(w, res.Code, &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{sc}}})
}

// refuseACLControl answers RFC 9133 filter control: 4.00 in idle time,
// 4.04 for ACLs this client has not created (there is no data channel yet).
func (s *Server) refuseACLControl(cuid string, mr *dots.Request) error {
	s.mu.Lock()
	active := s.book.HasActive(cuid)
	s.mu.Unlock()
	if !active {
		return dots.Errorf(dots.BadRequest, "filtering control (acl-list) is only allowed while a mitigation is active (RFC 9133)")
	}
	return dots.Errorf(dots.NotFound, "acl-name %q is unknown to this server", mr.Scope.ACLList[0].ACLName)
}

// ownedTargets returns every address the request covers, refusing (4.03)
// any target outside the client domain. Names are resolved.
func (s *Server) ownedTargets(d *ClientDomain, mr *dots.Request) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(mr.Prefixes))
	for _, p := range mr.Prefixes {
		if !d.Owns(p) {
			return nil, dots.Errorf(dots.Forbidden, "target-prefix %s is not owned by client domain %q", p, d.Name)
		}
		out = append(out, p)
	}
	names := make([]string, 0, len(mr.Scope.TargetFQDN)+len(mr.Scope.TargetURI))
	kinds := make([]string, 0, cap(names))
	for _, f := range mr.Scope.TargetFQDN {
		names, kinds = append(names, f), append(kinds, "target-fqdn "+f)
	}
	for _, u := range mr.Scope.TargetURI {
		h, _ := dots.URIHost(u)
		if a, err := netip.ParseAddr(h); err == nil {
			p := netip.PrefixFrom(a, a.BitLen())
			if !d.Owns(p) {
				return nil, dots.Errorf(dots.Forbidden, "target-uri %s: %s is not owned by client domain %q", u, a, d.Name)
			}
			out = append(out, p)
			continue
		}
		names, kinds = append(names, h), append(kinds, "target-uri "+u)
	}
	for i, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.ResolveTimeout)
		addrs, err := s.opts.Resolver.LookupNetIP(ctx, "ip", name)
		cancel()
		if err != nil || len(addrs) == 0 {
			return nil, dots.Errorf(dots.BadRequest, "%s: cannot resolve %s: %v", kinds[i], name, err)
		}
		for _, a := range addrs {
			a = a.Unmap()
			p := netip.PrefixFrom(a, a.BitLen())
			if _, err := dots.ParseTargetPrefix(p.String()); err != nil {
				return nil, dots.Errorf(dots.BadRequest, "%s resolves to %s, which cannot be a target", kinds[i], a)
			}
			if !d.Owns(p) {
				return nil, dots.Errorf(dots.Forbidden, "%s resolves to %s, which is not owned by client domain %q", kinds[i], a, d.Name)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func (s *Server) deleteMitigation(w mux.ResponseWriter, req *request) error {
	mid, ok := req.mid()
	if !ok {
		return dots.Errorf(dots.BadRequest, "mid is mandatory in the Uri-Path of a DELETE")
	}
	cuid := req.params["cuid"]
	s.mu.Lock()
	res := s.book.Delete(mitigation.Key{CUID: cuid, MID: mid}, s.now())
	done := s.commitLocked(res)
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return &dots.Error{Code: dots.ServiceUnavailable, Diag: "the withdrawal could not be stored; retry", Err: err}
	}
	if res.Record != nil {
		s.log.Info("mitigation withdrawn by client; active-but-terminating", "cuid", cuid, "mid", mid, "until", res.Record.TerminateAt)
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
			m, err := s.statusMessage(cuid, midp, c)
			if err != nil {
				return err
			}
			seq := s.obs.add(req.conn, req.msg.Token(), cuid, midp, c)
			if err := reply(w, dots.Content, m); err != nil {
				return err
			}
			w.Message().SetObserve(seq)
			return nil
		}
	}
	m, err := s.statusMessage(cuid, midp, c)
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
func (s *Server) statusMessage(cuid string, mid *uint32, c string) (*dots.Message, error) {
	s.mu.Lock()
	var recs []*mitigation.Record
	if mid != nil {
		if r, ok := s.book.Get(mitigation.Key{CUID: cuid, MID: *mid}); ok {
			recs = append(recs, r)
		}
	} else {
		recs = s.book.List(cuid)
	}
	s.mu.Unlock()
	if len(recs) == 0 {
		if mid != nil {
			return nil, dots.Errorf(dots.NotFound, "no mitigation request with mid %d", *mid)
		}
		return nil, dots.Errorf(dots.NotFound, "this client has no mitigation requests")
	}
	now := s.now()
	scopes := make([]dots.Scope, 0, len(recs))
	for _, r := range recs {
		scopes = append(scopes, r.StatusScope(now, c != "n", c != "c"))
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

func (s *Server) configOf(cuid string) session.Config {
	if c, ok := s.configs[cuid]; ok {
		return c
	}
	return session.DefaultConfig()
}

func (s *Server) getConfig(w mux.ResponseWriter, req *request) error {
	sid, withSID, err := s.sid(req)
	if err != nil {
		return err
	}
	s.mu.Lock()
	cfg := s.configOf(req.peer.cuid)
	s.mu.Unlock()
	if withSID && sid != cfg.SID {
		return dots.Errorf(dots.NotFound, "no session configuration with sid %d (current sid %d)", sid, cfg.SID)
	}
	if err := reply(w, dots.Content, s.opts.Ranges.Describe(cfg, withSID)); err != nil {
		return err
	}
	w.Message().SetOptionUint32(message.MaxAge, s.opts.ConfigMaxAge)
	return nil
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
	cuid := req.peer.cuid
	s.mu.Lock()
	next, code, err := s.opts.Ranges.Negotiate(s.configOf(cuid), sid, m)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.configs[cuid] = next
	b, _ := json.Marshal(next)
	done := s.j.add([]store.Op{{Bucket: bucketConfigs, Key: cuid, Value: b}})
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return &dots.Error{Code: dots.ServiceUnavailable, Diag: "the configuration could not be stored; retry", Err: err}
	}
	s.log.Info("session configuration set", "cuid", cuid, "sid", sid)
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
	cuid := req.peer.cuid
	s.mu.Lock()
	delete(s.configs, cuid)
	done := s.j.add([]store.Op{{Bucket: bucketConfigs, Key: cuid, Delete: true}})
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return &dots.Error{Code: dots.ServiceUnavailable, Diag: "the reset could not be stored; retry", Err: err}
	}
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
		pe = &dots.Error{Code: dots.InternalServerError, Diag: "internal error: " + err.Error()}
	}
	if pe.Body != nil {
		_ = reply(w, pe.Code, pe.Body)
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
