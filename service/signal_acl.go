package service

import (
	"context"
	"slices"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// activationOf maps the signal channel's activation-type (RFC 9133 §3.2.1,
// CBOR unsigned 1–3) onto the data channel's; absent is the YANG default,
// activate-when-mitigating.
func activationOf(a *dots.ActivationType) (data.ActivationType, bool) {
	if a == nil {
		return data.ActivateWhenMitigating, true
	}
	switch *a {
	case 1:
		return data.ActivateWhenMitigating, true
	case 2:
		return data.Immediate, true
	case 3:
		return data.Deactivate, true
	}
	return "", false
}

// signalActivation is activationOf in reverse, for status messages.
func signalActivation(a data.ActivationType) dots.ActivationType {
	switch a {
	case data.Immediate:
		return 2
	case data.Deactivate:
		return 3
	}
	return 1
}

// aclChange is one acl-list entry of a request, resolved against the
// client's ACLs.
type aclChange struct {
	name string
	act  data.ActivationType
	prev *aclRec // as it was before the change
}

// putWithACLControl handles a mitigation request that carries acl-list
// (RFC 9133 §3.2.1): filter control is for attack time only (4.00 while
// the client has no active mitigation), never in an efficacy update
// (4.00), and names only the client's own data-channel ACLs (4.04). The
// activation types change before the request is processed and at once
// (both immediate and activate-when-mitigating enforce the ACL while the
// client mitigates), they outlive the mitigation, and each changed ACL's
// lifetime is refreshed as by a data-channel refresh (RFC 8783 §7.2). A
// change the server cannot apply is 5.03 whose body is the failed update
// (RFC 9133 Figure 1); a request the mitigation book then refuses leaves
// the ACLs as they were.
func (s *Service) putWithACLControl(ctx context.Context, c Client, in PutRequest) (*PutResult, error) {
	changes, err := s.checkACLControl(c, in)
	if err != nil {
		return nil, err
	}
	if err := s.applyACLControl(c, in.MID, changes); err != nil {
		return nil, err
	}
	res, err := s.putMitigation(ctx, c, in)
	if err != nil {
		s.undoACLControl(c, changes)
		return nil, err
	}
	s.log.Info("acl activation changed over the signal channel", "cuid", c.CUID, "mid", in.MID, "acls", aclNames(changes))
	return res, nil
}

func aclNames(cs []aclChange) []string {
	out := make([]string, len(cs))
	for i, ch := range cs {
		out[i] = ch.name + "=" + string(ch.act)
	}
	return out
}

// checkACLControl validates the request's acl-list and resolves its names.
func (s *Service) checkACLControl(c Client, in PutRequest) ([]aclChange, error) {
	list := in.Request.Scope.ACLList
	if in.Efficacy {
		return nil, dots.Errorf(dots.BadRequest, "an efficacy update must not carry acl-list (RFC 9133 §3.2.1)")
	}
	seen := map[string]bool{}
	changes := make([]aclChange, 0, len(list))
	for i, e := range list {
		if e.ACLName == "" {
			return nil, dots.Errorf(dots.BadRequest, "acl-list[%d]: acl-name is mandatory (RFC 9133 §3.2.1)", i)
		}
		if seen[e.ACLName] {
			return nil, dots.Errorf(dots.BadRequest, "acl-list: acl-name %q appears twice (it is the list's key)", e.ACLName)
		}
		seen[e.ACLName] = true
		act, ok := activationOf(e.ActivationType)
		if !ok {
			return nil, dots.Errorf(dots.BadRequest, "acl-list[%d]: activation-type %d is not 1 (activate-when-mitigating), 2 (immediate) or 3 (deactivate)", i, *e.ActivationType)
		}
		changes = append(changes, aclChange{name: e.ACLName, act: act})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.book.HasActive(c.CUID) {
		return nil, dots.Errorf(dots.BadRequest, "filter control (acl-list) is for attack time only: this client has no active mitigation (RFC 9133 §3.2.1)")
	}
	dc := s.data[c.CUID]
	for i := range changes {
		j := -1
		if dc != nil {
			j = dc.acl(changes[i].name)
		}
		if j < 0 {
			return nil, dots.Errorf(dots.NotFound, "acl-name %q is not an ACL of this client (ACLs are created over the data channel, RFC 8783 §7.2)", changes[i].name)
		}
	}
	return changes, nil
}

// failedACLUpdate is the 5.03 of RFC 9133 §3.2.1: its body holds the
// update that failed (Figure 1), Max-Age says when to retry.
func failedACLUpdate(mid uint32, cs []aclChange, diag string, cause error) *dots.Error {
	list := make([]dots.ACLControl, len(cs))
	for i, ch := range cs {
		list[i] = dots.ACLControl{ACLName: ch.name, ActivationType: dots.Ptr(signalActivation(ch.act))}
	}
	body := &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{{MID: dots.Ptr(mid), ACLList: list}}}}
	return &dots.Error{Code: dots.ServiceUnavailable, Diag: diag, Body: body, Err: cause}
}

// applyACLControl sets the new activation types, refreshes the ACLs'
// lifetimes and enforces the result. The backends' policy is asked first
// about every ACL the change enforces.
func (s *Service) applyACLControl(c Client, mid uint32, cs []aclChange) error {
	s.mu.Lock()
	dc := s.data[c.CUID]
	if dc == nil {
		s.mu.Unlock()
		return failedACLUpdate(mid, cs, "the client's ACLs went away while the request was processed; retry", nil)
	}
	next := dc.clone()
	exp := s.now().Add(DataLifetime)
	var check []divert.Diversion
	for i := range cs {
		j := next.acl(cs[i].name)
		if j < 0 {
			s.mu.Unlock()
			return failedACLUpdate(mid, cs, "acl "+cs[i].name+" was deleted while the request was processed; retry", nil)
		}
		cs[i].prev = next.ACLs[j]
		r := *next.ACLs[j]
		act := cs[i].act
		r.ACL.ActivationType = &act
		r.Expires = exp
		next.ACLs[j] = &r
		if enforced(act, true) {
			check = append(check, aclDiversion(c.CUID, dc.Domain, &r))
		}
	}
	s.mu.Unlock()
	for _, d := range check {
		if err := s.orch.Check(d); err != nil {
			return failedACLUpdate(mid, cs, "acl "+d.Key.ACL+" cannot be enforced: "+err.Error(), err)
		}
	}
	s.mu.Lock()
	if s.data[c.CUID] != dc {
		// The data channel changed the client's ACLs meanwhile: apply
		// the change onto what is there now.
		s.mu.Unlock()
		return s.applyACLControl(c, mid, cs)
	}
	done := s.writeDataLocked(c.CUID, next)
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		s.log.Error("persisting acl activation", "cuid", c.CUID, "mid", mid, "err", err)
		return failedACLUpdate(mid, cs, "the ACL update could not be stored; retry", err)
	}
	s.reconcileACLs(c.CUID)
	return nil
}

// undoACLControl puts back the ACLs a refused request changed.
func (s *Service) undoACLControl(c Client, cs []aclChange) {
	s.mu.Lock()
	dc := s.data[c.CUID]
	if dc == nil {
		s.mu.Unlock()
		return
	}
	next := dc.clone()
	for _, ch := range cs {
		if j := next.acl(ch.name); j >= 0 && ch.prev != nil {
			next.ACLs[j] = ch.prev
		}
	}
	done := s.writeDataLocked(c.CUID, next)
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		s.log.Error("restoring acl activation after a refused request", "cuid", c.CUID, "err", err)
	}
	s.reconcileACLs(c.CUID)
}

// aclStatusLocked completes a copy of a record for its status: the ACLs
// its request controlled, with their activation types as they are now, so
// that a later change (over either channel) shows in notifications and
// polls (RFC 9133 §3.2.1); and a conflict with the client's accept-lists
// (acceptlist.go).
func (s *Service) aclStatusLocked(r *mitigation.Record) {
	dc := s.data[r.CUID]
	if dc == nil {
		return
	}
	s.acceptListConflictLocked(r)
	if len(r.Scope.ACLList) == 0 {
		return
	}
	list := slices.Clone(r.Scope.ACLList)
	for i := range list {
		if j := dc.acl(list[i].ACLName); j >= 0 {
			list[i].ActivationType = dots.Ptr(signalActivation(dc.ACLs[j].ACL.Activation()))
		}
	}
	r.Scope.ACLList = list
}
