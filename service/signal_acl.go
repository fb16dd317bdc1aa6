package service

import (
	"context"
	"errors"
	"slices"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// activationOf maps the signal channel's activation-type (RFC 9133 §3.2.1,
// CBOR unsigned 1–3) onto the data channel's; absent is the YANG default,
// activate-when-mitigating.
func activationOf(a *dots.ActivationType) data.ActivationType {
	if a == nil {
		return data.ActivateWhenMitigating
	}
	return data.ActivationType(a.String())
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

// aclChange is one acl-list entry of a request and the client's ACL as
// it was before the change.
type aclChange struct {
	name string
	act  data.ActivationType
	prev *aclRec
}

// putWithACLControl handles a mitigation request that carries acl-list
// (RFC 9133 §3.2.1). controlACLs (data_control.go) refuses it in idle time
// and in an efficacy update (4.00) and for an ACL the client does not have
// (4.04), and otherwise switches the ACLs at once, for good, refreshing
// their lifetime. Here the list is checked first as a YANG list keyed by
// acl-name (present, once each: 4.00), a change that cannot be stored is
// answered with the failed update as its body (RFC 9133 Figure 1), and a
// mitigation request refused after the switch (e.g. 4.09, a lower
// overlapping mid) puts the ACLs back: the request was not processed.
func (s *Service) putWithACLControl(ctx context.Context, c Client, in PutRequest) (*PutResult, error) {
	changes, err := s.checkACLList(c, in.Request.Scope.ACLList)
	if err != nil {
		return nil, err
	}
	if err := s.controlACLs(c, in.Request, in.Efficacy); err != nil {
		if dots.CodeOf(err) == dots.ServiceUnavailable {
			return nil, failedACLUpdate(in.MID, changes, err)
		}
		return nil, err
	}
	res, err := s.putMitigation(ctx, c, in)
	if err != nil {
		s.undoACLControl(c, changes)
		return nil, err
	}
	return res, nil
}

// checkACLList checks acl-name is present and unique, and notes the
// client's ACLs as they are.
func (s *Service) checkACLList(c Client, list []dots.ACLControl) ([]aclChange, error) {
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
		// controlACLs refuses an activation-type out of range.
		changes = append(changes, aclChange{name: e.ACLName, act: activationOf(e.ActivationType)})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if dc := s.data[c.CUID]; dc != nil {
		for i := range changes {
			if j := dc.acl(changes[i].name); j >= 0 {
				changes[i].prev = dc.ACLs[j]
			}
		}
	}
	return changes, nil
}

// failedACLUpdate is the 5.03 of RFC 9133 §3.2.1 with the update that
// failed as its body (Figure 1, with the request's mid); the transport
// adds Max-Age, after which the client retries.
func failedACLUpdate(mid uint32, cs []aclChange, cause error) *dots.Error {
	list := make([]dots.ACLControl, len(cs))
	for i, ch := range cs {
		list[i] = dots.ACLControl{ACLName: ch.name, ActivationType: dots.Ptr(signalActivation(ch.act))}
	}
	body := &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{{MID: dots.Ptr(mid), ACLList: list}}}}
	e := &dots.Error{Code: dots.ServiceUnavailable, Diag: "the ACL update could not be applied; retry", Body: body, Err: cause}
	var pe *dots.Error
	if errors.As(cause, &pe) && pe.Diag != "" {
		e.Diag, e.Err = pe.Diag, pe.Err
	}
	return e
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

// NotifyACLs tells the watchers (the signal channel's observers) the
// current state of the client's active mitigations after its ACLs changed
// by other means than a mitigation request (PutACLs and DeleteACL call it): RFC
// 9133 §3.2.1 wants a change of activation type during a mitigation in the
// next notification, and the status carries the activation types and the
// accept-list conflict as they are now. Without an active mitigation there
// is nothing to tell.
func (s *Service) NotifyACLs(cuid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var recs []*mitigation.Record
	for _, r := range s.book.List(cuid) {
		if r.Active() {
			recs = append(recs, s.withCountersLocked(r))
		}
	}
	if len(recs) == 0 {
		return
	}
	// Queued behind the client's earlier changes, like theirs.
	s.notes[ShardOf(cuid)].push(note{done: committed, ev: Event{CUID: cuid, Changed: recs}, hasEvent: true})
}
