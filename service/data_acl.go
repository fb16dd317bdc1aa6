package service

import (
	"net/netip"
	"slices"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots/data"
)

// Insert is where a new ACL goes in the client's ordered list (RFC 8040
// §4.8.5 and §4.8.6: insert first, last, before or after the ACL named by
// point). The zero value appends (last); an ACL that is replaced without
// Where keeps its place.
type Insert struct {
	Where string // "", "first", "last", "before", "after"
	Point string // the name of an existing ACL, for before and after
}

func (in Insert) validate() error {
	switch in.Where {
	case "", "first", "last":
		if in.Point != "" {
			return data.Errorf(400, data.TagInvalidValue, "point is only allowed with insert=before or insert=after (RFC 8040 §4.8.6)")
		}
	case "before", "after":
		if in.Point == "" {
			return data.Errorf(400, data.TagMissingAttribute, "insert=%s needs a point (RFC 8040 §4.8.6)", in.Where)
		}
	default:
		return data.Errorf(400, data.TagInvalidValue, "insert=%q is not first, last, before or after (RFC 8040 §4.8.5)", in.Where)
	}
	return nil
}

// aclDests checks that every destination network of the ACL lies inside
// the client's domain (403 access-denied otherwise) and returns the
// destinations of ACEs that name none: the domain's prefixes (RFC 8783
// §7.2: by default the filter applies to the client's own addresses). The
// ACL must also be enforceable (Filters).
func aclDests(d *Domain, acl *data.ACL) ([]netip.Prefix, error) {
	var dests []netip.Prefix
	for _, e := range acl.ACEs.ACE {
		p := e.Matches.IPv4Destination()
		if p == nil {
			p = e.Matches.IPv6Destination()
		}
		if p == nil {
			dests = d.Prefixes
			continue
		}
		if !d.Owns(p.Prefix) {
			return nil, accessDenied("acl %q, ace %q: destination %s is not owned by client domain %q", acl.Name, e.Name, p, d.Name)
		}
	}
	dests = slices.Clone(dests)
	if _, err := Filters(acl, dests); err != nil {
		return nil, data.Errorf(400, data.TagInvalidValue, "acl %q: %v", acl.Name, err)
	}
	return dests, nil
}

// PutACLs installs ACLs (RFC 8783 §7.2). With replace false (POST) every
// name must be new (409 resource-denied); with replace true (PUT on one
// ACL) an existing ACL is replaced and its lifetime refreshed. Destination
// networks must lie inside the client's domain, and the backends' checks
// (divert.Checker) must pass (403 access-denied otherwise). The ACLs
// go where in says. immediate ACLs are handed to the backends at once,
// activate-when-mitigating ones while the client has an active
// mitigation, deactivate ones are kept but not enforced.
func (s *Service) PutACLs(c Client, acls []data.ACL, replace bool, in Insert) (created bool, err error) {
	if err := in.validate(); err != nil {
		return false, err
	}
	recs := make([]*aclRec, len(acls))
	exp := s.now().Add(DataLifetime)
	for i := range acls {
		a := acls[i]
		dests, err := aclDests(c.Domain, &a)
		if err != nil {
			return false, err
		}
		a.PendingLifetime = nil
		for j := range a.ACEs.ACE {
			a.ACEs.ACE[j].Statistics = nil
		}
		recs[i] = &aclRec{ACL: a, Dests: dests, Expires: exp}
		// The backends' safety rails (e.g. the shortest prefix diverted)
		// refuse up front, whatever the activation type.
		if err := s.orch.Check(aclDiversion(c.CUID, c.Domain.Name, recs[i])); err != nil {
			return false, accessDenied("acl %q is refused by the mitigator's policy: %v", a.Name, err)
		}
	}
	err = s.editData(c.CUID, func(next *dataClient) error {
		var err error
		created, err = placeACLs(next, recs, replace, in)
		if err == nil && len(next.ACLs) > MaxACLsPerClient {
			err = data.Errorf(409, data.TagResourceDenied, "a client may hold at most %d acls", MaxACLsPerClient)
		}
		return err
	})
	// After a failed write too: a reconcile meanwhile may have seen the
	// change before it was undone.
	s.reconcileACLs(c.CUID)
	if err != nil {
		return false, err
	}
	s.NotifyACLs(c.CUID)
	return created, nil
}

// placeACLs puts recs into dc's list.
func placeACLs(dc *dataClient, recs []*aclRec, replace bool, in Insert) (bool, error) {
	created := true
	for _, r := range recs {
		i := dc.acl(r.ACL.Name)
		if i >= 0 && !replace {
			return false, data.Errorf(409, data.TagResourceDenied, "acl %q already exists", r.ACL.Name)
		}
		if i >= 0 {
			created = false
			if in.Where == "" {
				dc.ACLs[i] = r
				continue
			}
			dc.ACLs = slices.Delete(dc.ACLs, i, i+1)
		}
		at := len(dc.ACLs)
		switch in.Where {
		case "first":
			at = 0
		case "before", "after":
			p := dc.acl(in.Point)
			if p < 0 || in.Point == r.ACL.Name {
				return false, data.Errorf(400, data.TagInvalidValue, "point acl %q does not exist (RFC 8040 §4.8.6)", in.Point)
			}
			at = p
			if in.Where == "after" {
				at++
			}
		}
		dc.ACLs = slices.Insert(dc.ACLs, at, r)
		if in.Where == "first" {
			in = Insert{Where: "after", Point: r.ACL.Name} // the next ones follow, in order
		}
	}
	return created, nil
}

// ACLs returns the client's ACLs in order (RFC 8783 §7.3); name "" means all.
func (s *Service) ACLs(c Client, name string) ([]data.ACL, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dc, ok := s.data[c.CUID]
	if !ok {
		return nil, errNotRegistered(c.CUID)
	}
	if name == "" {
		return s.aclViewsLocked(c.CUID, dc.ACLs), nil
	}
	i := dc.acl(name)
	if i < 0 {
		return nil, data.Errorf(404, data.TagInvalidValue, "acl %q does not exist", name)
	}
	return s.aclViewsLocked(c.CUID, dc.ACLs[i:i+1]), nil
}

// DeleteACL deletes one of the client's ACLs (RFC 8783 §7.4); an
// enforced one is withdrawn from the backends.
func (s *Service) DeleteACL(c Client, name string) error {
	err := s.editData(c.CUID, func(next *dataClient) error {
		i := next.acl(name)
		if i < 0 {
			return data.Errorf(404, data.TagInvalidValue, "acl %q does not exist", name)
		}
		next.ACLs = slices.Delete(next.ACLs, i, i+1)
		return nil
	})
	s.reconcileACLs(c.CUID) // after a failed write too, as in PutACLs
	if err != nil {
		return err
	}
	s.NotifyACLs(c.CUID)
	return nil
}

// aclViewsLocked renders ACLs with pending-lifetime and, where a backend
// measured the ACL's traffic, statistics (RFC 8783 §7.3): per ACE from a
// backend that counts each filter (divert.Counters.Matched, summed over
// the ACE's filters); from one that counts the ACL as a whole, only for an
// ACL of one ACE. Otherwise they are absent, never made up.
func (s *Service) aclViewsLocked(cuid string, recs []*aclRec) []data.ACL {
	out := make([]data.ACL, len(recs))
	for i, r := range recs {
		a := r.ACL
		a.PendingLifetime = s.pendingLifetime(r.Expires)
		a.ACEs.ACE = slices.Clone(a.ACEs.ACE)
		if m := s.aclMeters[divert.Key{CUID: cuid, ACL: a.Name}]; m != nil {
			for j, st := range aceStatistics(r, m) {
				a.ACEs.ACE[j].Statistics = st
			}
		}
		out[i] = a
	}
	return out
}

// aceStatistics sums what the backends measured of r per ACE; an ACE no
// backend measured has nil.
func aceStatistics(r *aclRec, m *meter) []*data.Statistics {
	aces := r.ACL.ACEs.ACE
	// Filters holds each ACE's filters in order: their counts give the
	// ranges of Matched that belong to each ACE.
	spans := make([]int, len(aces))
	total := 0
	for j := range aces {
		fs, _ := aceFilters(&aces[j], r.Dests) // checked when the ACL was written
		spans[j] = len(fs)
		total += len(fs)
	}
	pk, oc := make([]uint64, len(aces)), make([]uint64, len(aces))
	seen := make([]bool, len(aces))
	for _, bm := range m.byBackend {
		switch {
		case len(bm.last.Matched) == total && total > 0:
			at := 0
			for j, n := range spans {
				for f := at; f < at+n; f++ {
					c := bm.last.Matched[f]
					if f < len(bm.base.Matched) {
						c.Packets += bm.base.Matched[f].Packets
						c.Bytes += bm.base.Matched[f].Bytes
					}
					pk[j] += c.Packets
					oc[j] += c.Bytes
				}
				at += n
				seen[j] = true
			}
		case bm.last.Matched == nil && len(aces) == 1:
			pk[0] += bm.base.PktsDropped + bm.last.PktsDropped
			oc[0] += bm.base.BytesDropped + bm.last.BytesDropped
			seen[0] = true
		}
	}
	out := make([]*data.Statistics, len(aces))
	for j := range aces {
		if seen[j] {
			p, o := data.Counter64(pk[j]), data.Counter64(oc[j])
			out[j] = &data.Statistics{MatchedPackets: &p, MatchedOctets: &o}
		}
	}
	return out
}

// measuredACL takes a backend's counters for an enforced ACL.
func (s *Service) measuredACL(backend string, k divert.Key, c divert.Counters) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aclOn[k] == nil {
		return
	}
	m := s.aclMeters[k]
	if m == nil {
		m = &meter{byBackend: map[string]*backendMeter{}}
		s.aclMeters[k] = m
	}
	bm := m.byBackend[backend]
	if bm == nil {
		bm = &backendMeter{}
		m.byBackend[backend] = bm
	}
	if c.BytesDropped < bm.last.BytesDropped || c.PktsDropped < bm.last.PktsDropped || matchedDecreased(bm.last.Matched, c.Matched) {
		bm.base.BytesDropped += bm.last.BytesDropped
		bm.base.PktsDropped += bm.last.PktsDropped
		bm.base.Matched = addMatched(bm.base.Matched, bm.last.Matched)
	}
	if len(c.Matched) != len(bm.last.Matched) && bm.last.Matched != nil {
		bm.base.Matched = nil // other filters (the ACL was replaced): counted anew
	}
	c.Matched = slices.Clone(c.Matched)
	bm.last = c
}

// matchedDecreased reports whether a filter's counter went down (the
// device's counters were reset) between two samples of the same filters.
func matchedDecreased(last, next []divert.FilterCount) bool {
	if len(last) != len(next) {
		return false
	}
	for i := range next {
		if next[i].Packets < last[i].Packets || next[i].Bytes < last[i].Bytes {
			return true
		}
	}
	return false
}

// addMatched adds b to a, filter by filter (a grows to b's length).
func addMatched(a, b []divert.FilterCount) []divert.FilterCount {
	if len(a) < len(b) {
		a = append(a, make([]divert.FilterCount, len(b)-len(a))...)
	}
	for i := range b {
		a[i].Packets += b[i].Packets
		a[i].Bytes += b[i].Bytes
	}
	return a
}

// enforced reports whether an ACL is to be handed to the backends now.
func enforced(a data.ActivationType, mitigating bool) bool {
	return a == data.Immediate || a == data.ActivateWhenMitigating && mitigating
}

func aclDiversion(cuid, domain string, r *aclRec) divert.Diversion {
	fs, _ := Filters(&r.ACL, r.Dests) // checked when the ACL was written
	d := divert.Diversion{Key: divert.Key{CUID: cuid, ACL: r.ACL.Name}, Domain: domain, Filters: fs, Expires: r.Expires}
	for _, f := range fs {
		if !slices.Contains(d.Prefixes, f.Match.Destination) {
			d.Prefixes = append(d.Prefixes, f.Match.Destination)
		}
	}
	return d
}

// wantedACLsLocked returns the diversions of the client's ACLs that are to
// be enforced now.
func (s *Service) wantedACLsLocked(cuid string) map[divert.Key]*aclRec {
	dc := s.data[cuid]
	if dc == nil {
		return nil
	}
	mitigating := s.book.HasActive(cuid)
	out := map[divert.Key]*aclRec{}
	for _, r := range dc.ACLs {
		if enforced(r.ACL.Activation(), mitigating) {
			out[divert.Key{CUID: cuid, ACL: r.ACL.Name}] = r
		}
	}
	return out
}

// reconcileACLs hands the backends what changed in the client's enforced
// ACLs: new or changed ones applied, the others withdrawn. It runs after
// every data-channel change and every change of the client's mitigations
// (an activate-when-mitigating ACL follows them).
func (s *Service) reconcileACLs(cuid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := s.wantedACLsLocked(cuid)
	domain := ""
	if dc := s.data[cuid]; dc != nil {
		domain = dc.Domain
	}
	for k, r := range want {
		if s.aclOn[k] != r {
			s.aclOn[k] = r
			s.orch.Apply(aclDiversion(cuid, domain, r))
		}
	}
	for k := range s.aclOn {
		if k.CUID == cuid && want[k] == nil {
			delete(s.aclOn, k)
			delete(s.aclMeters, k)
			s.orch.Withdraw(k)
		}
	}
}

// enforcedACLsLocked returns every client's enforced ACLs, for the
// backends' Sync at start, and marks them applied.
func (s *Service) enforcedACLsLocked() []divert.Diversion {
	var out []divert.Diversion
	for cuid, dc := range s.data {
		for k, r := range s.wantedACLsLocked(cuid) {
			s.aclOn[k] = r
			out = append(out, aclDiversion(cuid, dc.Domain, r))
		}
	}
	return out
}

// aclEvent follows a client's mitigations for its activate-when-mitigating ACLs.
func (s *Service) aclEvent(ev Event) {
	if !ev.Periodic && ev.CUID != "" {
		s.reconcileACLs(ev.CUID)
	}
}
