package service

import (
	"encoding/json"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dots/data"
)

// controlACLs applies RFC 9133 filter control: the acl-list of a
// mitigation request changes the activation type of the client's ACLs
// (created over the data channel), at once, for good (it outlives the
// mitigation) and refreshing their lifetime like a data-channel refresh
// (§3.2). Only while the client has an active mitigation: 4.00 in idle time;
// 4.04 for an ACL the client does not have; 4.00 in an efficacy update
// (§3.2: it never carries acl-list); 5.03 with the refused update as the
// diagnostic when the change cannot be stored.
func (s *Service) controlACLs(c Client, mr *dots.Request, efficacy bool) error {
	list := mr.Scope.ACLList
	if efficacy {
		return dots.Errorf(dots.BadRequest, "an efficacy update cannot carry acl-list (RFC 9133 §3.2)")
	}
	s.mu.Lock()
	if !s.book.HasActive(c.CUID) {
		s.mu.Unlock()
		return dots.Errorf(dots.BadRequest, "filtering control (acl-list) is only allowed while a mitigation is active (RFC 9133 §3.2)")
	}
	dc := s.data[c.CUID]
	var next *dataClient
	if dc != nil {
		next = dc.clone()
	}
	exp := s.now().Add(DataLifetime)
	for _, e := range list {
		i := -1
		if next != nil {
			i = next.acl(e.ACLName)
		}
		if i < 0 {
			s.mu.Unlock()
			return dots.Errorf(dots.NotFound, "acl-name %q is unknown: the client has no such ACL (RFC 9133 §3.2)", e.ACLName)
		}
		act := data.ActivateWhenMitigating
		if e.ActivationType != nil {
			switch a := data.ActivationType(e.ActivationType.String()); a {
			case data.ActivateWhenMitigating, data.Immediate, data.Deactivate:
				act = a
			default:
				s.mu.Unlock()
				return dots.Errorf(dots.BadRequest, "acl-list %q: activation-type %s is not 1, 2 or 3", e.ACLName, e.ActivationType)
			}
		}
		rec := *next.ACLs[i]
		rec.ACL.ActivationType = &act
		rec.Expires = exp
		next.ACLs[i] = &rec
	}
	done := s.writeDataLocked(c.CUID, next)
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		// The change was in memory until the write failed: a reconcile
		// meanwhile (another mitigation's outcome) may have enforced it.
		s.reconcileACLs(c.CUID)
		diag, _ := json.Marshal(map[string]any{"ietf-dots-signal-channel:mitigation-scope": map[string]any{
			"scope": []any{map[string]any{"ietf-dots-signal-control:acl-list": list}}}})
		return &dots.Error{Code: dots.ServiceUnavailable, Diag: string(diag), Err: err}
	}
	s.reconcileACLs(c.CUID)
	s.log.Info("filtering control over the signal channel", "cuid", c.CUID, "acls", len(list))
	return nil
}
