package service

import (
	"encoding/json"
	"fmt"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/session"
	"github.com/levee-dots/levee/store"
)

// SessionConfig returns the client's session configuration (RFC 9132 §4.5):
// the one it set, or the defaults.
func (s *Service) SessionConfig(c Client) session.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.configOfLocked(c.CUID)
}

func (s *Service) configOfLocked(cuid string) session.Config {
	if c, ok := s.configs[cuid]; ok {
		return c
	}
	return session.DefaultConfig()
}

// SetSessionConfig negotiates a PUT /config/sid (RFC 9132 §4.5.2): 2.01 or
// 2.04, or the error to answer. The configuration is on disk when it returns.
func (s *Service) SetSessionConfig(c Client, sid uint32, m *dots.Message) (dots.Code, error) {
	cuid := c.CUID
	s.mu.Lock()
	old, had := s.configs[cuid]
	next, code, err := s.opts.Ranges.Negotiate(s.configOfLocked(cuid), sid, m)
	if err != nil {
		s.mu.Unlock()
		return 0, err
	}
	s.configs[cuid] = next
	b, _ := json.Marshal(next)
	done := s.j.add([]store.Op{{Bucket: bucketConfigs, Key: cuid, Value: b}}, func() { s.restoreConfig(cuid, old, had) })
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return 0, &dots.Error{Code: dots.ServiceUnavailable, Diag: "the configuration could not be stored; retry", Err: err}
	}
	s.log.Info("session configuration set", "cuid", cuid, "sid", sid)
	return code, nil
}

func (s *Service) restoreConfig(cuid string, old session.Config, had bool) {
	if had {
		s.configs[cuid] = old
	} else {
		delete(s.configs, cuid)
	}
}

// ResetSessionConfig returns the client to the default configuration
// (DELETE /config, RFC 9132 §4.5.3).
func (s *Service) ResetSessionConfig(c Client) error {
	cuid := c.CUID
	s.mu.Lock()
	old, had := s.configs[cuid]
	delete(s.configs, cuid)
	done := s.j.add([]store.Op{{Bucket: bucketConfigs, Key: cuid, Delete: true}}, func() { s.restoreConfig(cuid, old, had) })
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return &dots.Error{Code: dots.ServiceUnavailable, Diag: "the reset could not be stored; retry", Err: err}
	}
	return nil
}

// SessionValues returns the session parameters in force for each client:
// the mitigating set while it has an active mitigation, else idle.
func (s *Service) SessionValues(cuids []string) map[string]session.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]session.Values, len(cuids))
	for _, c := range cuids {
		out[c] = s.configOfLocked(c).Current(s.book.HasActive(c))
	}
	return out
}

// CheckCUID checks that a client (known by the cuid derived from its
// certificate and the certificate's SPKI hash) may speak as cuid, binding
// a first-used cuid to it (RFC 9132 §4.4.1). A cuid bound to another
// certificate is a cuid collision: 4.09 with conflict-cause cuid-collision
// (§4.4.1, Figure 11), after which the client makes a new cuid. An unbound
// cuid is bound when it is the derived one, when the derived one collided,
// or when the policy lets clients choose their cuid (4.03 otherwise).
func (s *Service) CheckCUID(derived, spki, cuid string) error {
	s.mu.Lock()
	derivedOwner, derivedBound := s.bindings[derived]
	owner, bound := s.bindings[cuid]
	chosen := s.opts.Policy.AllowChosenCUID // SetPolicy changes it
	s.mu.Unlock()
	switch {
	case bound && owner == spki:
		return nil
	case bound:
		return cuidCollision(cuid)
	case cuid == derived, derivedBound && derivedOwner != spki, chosen:
		return s.bind(cuid, spki)
	}
	return dots.Errorf(dots.Forbidden, "cuid %s is not the one derived from this client's certificate (%s): "+
		"another cuid is accepted after a cuid collision, or always with the server setting policy.allow-chosen-cuid: true", cuid, derived)
}

// cuidCollision is the 4.09 of RFC 9132 §4.4.1: conflict-information with
// conflict-cause cuid-collision only (no conflict-status, conflict-scope
// or retry-timer).
func cuidCollision(cuid string) error {
	ci := &dots.ConflictInformation{ConflictCause: dots.Ptr(dots.CauseCUIDCollision)}
	return &dots.Error{Code: dots.Conflict, Diag: fmt.Sprintf("cuid collision: cuid %s is in use by another client; choose another cuid", cuid),
		Body: &dots.Message{MitigationScope: &dots.MitigationScope{Scope: []dots.Scope{{ConflictInformation: ci}}}}}
}

func (s *Service) bind(cuid, spki string) error {
	s.mu.Lock()
	if cur, ok := s.bindings[cuid]; ok {
		s.mu.Unlock()
		if cur != spki {
			return cuidCollision(cuid) // bound by another client since CheckCUID looked
		}
		return nil
	}
	s.bindings[cuid] = spki
	done := s.j.add([]store.Op{{Bucket: bucketBindings, Key: cuid, Value: []byte(spki)}}, func() { delete(s.bindings, cuid) })
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return &dots.Error{Code: dots.ServiceUnavailable, Diag: "could not persist the cuid binding", Err: err}
	}
	return nil
}
