package service

import (
	"slices"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// acceptListConflictLocked sets conflict-information with conflict-cause 2,
// conflict-with-acceptlist (RFC 9132 §4.4.1), on a copy of an active
// record when one of the client's own ACLs enforced now accepts traffic
// (forwarding accept without a rate limit) to an address the request
// covers: the sources that ACL lists reach the target unmitigated, attack
// traffic among them. conflict-scope names those ACLs by acl-name and
// acl-type; the client can switch them off from the signal channel (RFC
// 9133 §4.1). A conflict with another client's request, already set, is
// kept: the status holds one conflict-information.
func (s *Service) acceptListConflictLocked(r *mitigation.Record) {
	if r.Conflict != nil || !r.Active() {
		return
	}
	if refs := s.acceptListsLocked(r); len(refs) > 0 {
		r.Conflict = &dots.ConflictInformation{
			ConflictCause: dots.Ptr(dots.CauseConflictAcceptList),
			ConflictScope: &dots.ConflictScope{ACLList: refs},
		}
	}
}

// acceptListsLocked returns the client's ACLs enforced now (with this
// mitigation) that accept traffic to any of the request's addresses.
func (s *Service) acceptListsLocked(r *mitigation.Record) []dots.ACLRef {
	dc := s.data[r.CUID]
	if dc == nil {
		return nil
	}
	want := s.wantedACLsLocked(r.CUID)
	var refs []dots.ACLRef
	for _, rec := range dc.ACLs {
		if want[divert.Key{CUID: r.CUID, ACL: rec.ACL.Name}] == nil {
			continue
		}
		fs, _ := Filters(&rec.ACL, rec.Dests) // checked when the ACL was written
		if slices.ContainsFunc(fs, func(f divert.Filter) bool {
			return f.Accept && slices.ContainsFunc(r.Prefixes, f.Match.Destination.Overlaps)
		}) {
			refs = append(refs, dots.ACLRef{ACLName: rec.ACL.Name, ACLType: string(rec.ACL.Type)})
		}
	}
	return refs
}
