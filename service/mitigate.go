package service

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// PutRequest is a client's PUT of one mitigation request (RFC 9132 §4.4.1).
type PutRequest struct {
	MID      uint32
	Request  *dots.Request // parsed and validated (dots.ParseMitigationRequest)
	Efficacy bool          // If-Match present and empty: an efficacy update (§4.4.3)
}

// PutResult is the answer to a PUT.
type PutResult struct {
	// Code is 2.01 (created, or re-requested while terminating), 2.04
	// (refreshed) or 0 (an efficacy update for an unknown or withdrawn mid:
	// ignored, RFC 9132 §4.4.3).
	Code       dots.Code
	Mitigation *mitigation.Record        // the request as it now is
	Conflict   *dots.ConflictInformation // overlap with another client's request
	Superseded []uint32                  // this client's lower mids the request replaced
}

// Note is the status note of a PutResult for the client: the request's
// note, and which mids it superseded.
func (r *PutResult) Note() string {
	note := r.Mitigation.Note
	if len(r.Superseded) > 0 {
		mids := make([]string, len(r.Superseded))
		for i, m := range r.Superseded {
			mids[i] = fmt.Sprint(m)
		}
		sup := "supersedes mids " + strings.Join(mids, ", ")
		if note == "" {
			return sup
		}
		return sup + "; " + note
	}
	return note
}

// PutMitigation creates, refreshes or updates the efficacy of one of the
// client's mitigation requests. Targets outside the client's domain are
// refused (4.03); names are resolved once, at creation, and their addresses
// kept (re-resolved on a refresh after their TTL, never counting this
// server's own diversion addresses, and kept as they were when the resolver
// fails). The change is on disk before PutMitigation returns.
// A request with acl-list also changes the client's ACLs (RFC 9133,
// signal_acl.go).
func (s *Service) PutMitigation(ctx context.Context, c Client, in PutRequest) (*PutResult, error) {
	if len(in.Request.Scope.ACLList) > 0 {
		return s.putWithACLControl(ctx, c, in)
	}
	return s.putMitigation(ctx, c, in)
}

func (s *Service) putMitigation(ctx context.Context, c Client, in PutRequest) (*PutResult, error) {
	mr := in.Request
	k := mitigation.Key{CUID: c.CUID, MID: in.MID}
	s.mu.Lock()
	cur, exists := s.book.Peek(k)
	s.mu.Unlock()
	if len(mr.Scope.AliasName) > 0 {
		// Expanded on every PUT, so that a refresh or efficacy update that
		// repeats the request compares equal to the stored scope.
		if err := s.expandAliases(c.CUID, mr); err != nil {
			return nil, err
		}
	}
	put := mitigation.PutRequest{CUID: c.CUID, Domain: c.Domain.Name, MID: in.MID, Req: mr, Efficacy: in.Efficacy}
	if exists {
		// A refresh or efficacy update: the targets were checked at
		// creation; the names' addresses are kept, or re-resolved once
		// their TTL ran out.
		put.Prefixes, put.FromNames, put.NamesExpire = cur.Prefixes, cur.FromNames, cur.NamesExpire
		if !in.Efficacy {
			s.readdress(ctx, c, cur, &put)
		}
	} else if !in.Efficacy {
		t, err := s.ownedTargets(ctx, c.Domain, mr)
		if err != nil {
			return nil, err
		}
		put.Prefixes, put.FromNames, put.NamesExpire = t.all, t.fromNames, t.expire
		put.Escalation = s.firstStep(c.Domain.Name, &mr.Scope, s.now())
		if mr.Trigger {
			if err := s.orch.Check(diversionOf(&mitigation.Record{Key: k, Domain: c.Domain.Name, Prefixes: t.all, FromNames: t.fromNames,
				Scope: mr.Scope, Escalation: put.Escalation})); err != nil {
				return nil, dots.Errorf(dots.Forbidden, "refused by the mitigator's policy: %v", err)
			}
			if !s.orch.Configured() {
				put.Note = divert.NoMitigator
			}
		}
	}
	s.mu.Lock()
	res, err := s.book.Put(put, s.now())
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	done := s.commitLocked(res)
	if res.Code == dots.Changed {
		s.escalateLocked([]mitigation.Key{k})
	}
	var out *PutResult
	if res.Record != nil {
		m := s.withCountersLocked(res.Record) // with a conflict-with-acceptlist, if any
		out = &PutResult{Code: res.Code, Mitigation: m, Conflict: m.Conflict, Superseded: res.Superseded}
	}
	s.mu.Unlock()
	if res.Code == 0 {
		return &PutResult{}, nil // efficacy update of an unknown mid: silently ignored
	}
	if err := done.wait(); err != nil {
		s.log.Error("persisting mitigation", "cuid", c.CUID, "mid", in.MID, "err", err)
		return nil, &dots.Error{Code: dots.ServiceUnavailable, Diag: "the request could not be stored; retry", Err: err}
	}
	if res.Code == dots.Created {
		attrs := []any{"cuid", c.CUID, "mid", in.MID, "domain", c.Domain.Name, "targets", res.Record.Prefixes,
			"lifetime", res.Record.Lifetime, "trigger", res.Record.Trigger}
		if len(res.Superseded) > 0 {
			attrs = append(attrs, "superseded", res.Superseded)
		}
		s.log.Info("mitigation accepted", attrs...)
	}
	return out, nil
}

// targets is what a request covers after ownership checks.
type targets struct {
	all       []netip.Prefix // prefixes as asked, then the names' addresses
	fromNames []netip.Prefix
	expire    time.Time // when the names are due to be resolved again
}

// ownedTargets returns every address the request covers, refusing (4.03)
// any target outside the client domain. Names are resolved.
func (s *Service) ownedTargets(ctx context.Context, d *Domain, mr *dots.Request) (*targets, error) {
	t := &targets{all: make([]netip.Prefix, 0, len(mr.Prefixes))}
	for _, p := range mr.Prefixes {
		if !d.Owns(p) {
			return nil, dots.Errorf(dots.Forbidden, "target-prefix %s is not owned by client domain %q", p, d.Name)
		}
		t.all = append(t.all, p)
	}
	names, kinds := s.names(mr)
	for i, h := range mr.Scope.TargetURI {
		host, _ := dots.URIHost(h)
		if a, err := netip.ParseAddr(host); err == nil {
			p := netip.PrefixFrom(a, a.BitLen())
			if !d.Owns(p) {
				return nil, dots.Errorf(dots.Forbidden, "target-uri %s: %s is not owned by client domain %q", mr.Scope.TargetURI[i], a, d.Name)
			}
			t.all = append(t.all, p)
		}
	}
	for i, name := range names {
		addrs, ttl, err := s.resolve(ctx, name)
		if err != nil {
			return nil, dots.Errorf(dots.BadRequest, "%s: cannot resolve %s: %s", kinds[i], name, err)
		}
		for _, a := range addrs {
			p := netip.PrefixFrom(a, a.BitLen())
			if _, err := dots.ParseTargetPrefix(p.String()); err != nil {
				return nil, dots.Errorf(dots.BadRequest, "%s resolves to %s, which cannot be a target", kinds[i], a)
			}
			if !d.Owns(p) {
				return nil, dots.Errorf(dots.Forbidden, "%s resolves to %s, which is not owned by client domain %q", kinds[i], a, d.Name)
			}
			if !slices.Contains(t.fromNames, p) {
				t.fromNames = append(t.fromNames, p)
			}
		}
		if exp := s.now().Add(ttl); t.expire.IsZero() || exp.Before(t.expire) {
			t.expire = exp
		}
	}
	for _, p := range t.fromNames {
		if !slices.Contains(t.all, p) {
			t.all = append(t.all, p)
		}
	}
	return t, nil
}

// names returns the names a request asks for, and how to call each in a
// diagnostic.
func (s *Service) names(mr *dots.Request) (names, kinds []string) {
	for _, f := range mr.Scope.TargetFQDN {
		names, kinds = append(names, f), append(kinds, "target-fqdn "+f)
	}
	for _, u := range mr.Scope.TargetURI {
		h, _ := dots.URIHost(u)
		if _, err := netip.ParseAddr(h); err == nil {
			continue
		}
		names, kinds = append(names, h), append(kinds, "target-uri "+u)
	}
	return names, kinds
}

// resolve asks the resolver for a name's addresses, less this server's own
// diversion addresses.
func (s *Service) resolve(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ResolveTimeout)
	defer cancel()
	addrs, ttl, err := s.opts.Resolver.Resolve(ctx, name)
	if err != nil {
		var dnsErr interface{ Timeout() bool }
		if errors.As(err, &dnsErr) && dnsErr.Timeout() {
			return nil, 0, errors.New("the resolver did not answer")
		}
		return nil, 0, errors.New("the name does not resolve")
	}
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if !s.opts.IsDiversionAddr(a) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, 0, errors.New("it has no address other than this server's diversion addresses")
	}
	return out, ttl, nil
}

// readdress re-resolves the names of a request being refreshed once their
// TTL ran out. The new addresses replace the old only when every name
// resolved and all of them are owned; otherwise the addresses resolved
// before are kept (the resolver being down must not end a mitigation).
func (s *Service) readdress(ctx context.Context, c Client, cur mitigation.Peeked, put *mitigation.PutRequest) {
	names, _ := s.names(put.Req)
	if len(names) == 0 || s.now().Before(cur.NamesExpire) {
		return
	}
	named := map[netip.Prefix]bool{}
	var fromNames []netip.Prefix
	expire := time.Time{}
	for _, name := range names {
		addrs, ttl, err := s.resolve(ctx, name)
		if err != nil {
			s.log.Warn("name not re-resolved; keeping its addresses", "cuid", c.CUID, "mid", cur.MID, "name", name, "reason", err)
			return
		}
		for _, a := range addrs {
			p := netip.PrefixFrom(a, a.BitLen())
			if !c.Domain.Owns(p) {
				s.log.Warn("name now resolves outside the client domain; keeping its addresses", "cuid", c.CUID, "mid", cur.MID, "name", name, "addr", a)
				return
			}
			if !named[p] {
				named[p] = true
				fromNames = append(fromNames, p)
			}
		}
		if exp := s.now().Add(ttl); expire.IsZero() || exp.Before(expire) {
			expire = exp
		}
	}
	var all []netip.Prefix
	for _, p := range cur.Prefixes {
		if !slices.Contains(cur.FromNames, p) {
			all = append(all, p)
		}
	}
	for _, p := range fromNames {
		if !slices.Contains(all, p) {
			all = append(all, p)
		}
	}
	put.Prefixes, put.FromNames, put.NamesExpire, put.Readdress = all, fromNames, expire, true
}

// Mitigation returns one of the client's requests (4.04 if there is none).
func (s *Service) Mitigation(c Client, mid uint32) (*mitigation.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.book.Get(mitigation.Key{CUID: c.CUID, MID: mid})
	if !ok {
		return nil, dots.Errorf(dots.NotFound, "no mitigation request with mid %d", mid)
	}
	return s.withCountersLocked(r), nil
}

// Mitigations returns the client's requests in mid order (4.04 if none).
func (s *Service) Mitigations(c Client) ([]*mitigation.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := s.book.List(c.CUID)
	if len(recs) == 0 {
		return nil, dots.Errorf(dots.NotFound, "this client has no mitigation requests")
	}
	for i, r := range recs {
		recs[i] = s.withCountersLocked(r)
	}
	return recs, nil
}

// WithdrawMitigation withdraws one of the client's requests (RFC 9132
// §4.4.4): the diversion goes on for the active-but-terminating period. It
// succeeds for an unknown mid too (2.02 either way).
func (s *Service) WithdrawMitigation(c Client, mid uint32) error {
	s.mu.Lock()
	res := s.book.Delete(mitigation.Key{CUID: c.CUID, MID: mid}, s.now())
	done := s.commitLocked(res)
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return &dots.Error{Code: dots.ServiceUnavailable, Diag: "the withdrawal could not be stored; retry", Err: err}
	}
	if res.Record != nil {
		s.log.Info("mitigation withdrawn by client; active-but-terminating", "cuid", c.CUID, "mid", mid, "until", res.Record.TerminateAt)
	}
	return nil
}

// HasActive reports whether the client has an active mitigation.
func (s *Service) HasActive(cuid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.book.HasActive(cuid)
}

// AllMitigations returns every client's requests, by cuid then mid: the
// operator's view (dashboard, metrics), not a client's.
func (s *Service) AllMitigations() []*mitigation.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*mitigation.Record
	for _, cuid := range s.book.Clients() {
		for _, r := range s.book.List(cuid) {
			out = append(out, s.withCountersLocked(r))
		}
	}
	return out
}
