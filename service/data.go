package service

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dots/data"
	"github.com/levee-dots/levee/store"
)

// DataLifetime is how long aliases and ACLs are kept unless refreshed: RFC
// 8783 §4 (and §6.1, §7.2) requires at least 10080 minutes (one week).
const DataLifetime = 10080 * time.Minute

// Bounds on what one client may hold over the data channel.
const (
	MaxAliasesPerClient = 1024
	MaxACLsPerClient    = 4096
)

const bucketDataClients = "data-clients"

// dataClient is a client registered over the data channel (RFC 8783 §5)
// with its aliases and its ACLs in the client's order. It is stored as one
// record, so the order and every change are written atomically.
type dataClient struct {
	CUID    string      `json:"cuid"`
	CDID    string      `json:"cdid,omitempty"`
	Domain  string      `json:"domain"`
	Aliases []*aliasRec `json:"aliases,omitempty"`
	ACLs    []*aclRec   `json:"acls,omitempty"`
}

type aliasRec struct {
	Alias   data.Alias `json:"alias"`
	Expires time.Time  `json:"expires"`
}

type aclRec struct {
	ACL data.ACL `json:"acl"`
	// Dests are the owned destinations of an ACE without a destination
	// network: the client domain's prefixes when the ACL was written
	// (RFC 8783 §7.2: the filter then applies to all of them).
	Dests   []netip.Prefix `json:"dests,omitempty"`
	Expires time.Time      `json:"expires"`
}

func (c *dataClient) clone() *dataClient {
	out := *c
	out.Aliases = slices.Clone(c.Aliases)
	out.ACLs = slices.Clone(c.ACLs)
	return &out
}

func (c *dataClient) alias(name string) int {
	return slices.IndexFunc(c.Aliases, func(a *aliasRec) bool { return a.Alias.Name == name })
}

func (c *dataClient) acl(name string) int {
	return slices.IndexFunc(c.ACLs, func(a *aclRec) bool { return a.ACL.Name == name })
}

func dataOps(cuid string, c *dataClient) []store.Op {
	if c == nil {
		return []store.Op{{Bucket: bucketDataClients, Key: cuid, Delete: true}}
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("service: encoding a data-channel record cannot fail: %v", err))
	}
	return []store.Op{{Bucket: bucketDataClients, Key: cuid, Value: b}}
}

func (s *Service) restoreData() error {
	return s.opts.Store.ForEach(bucketDataClients, func(key string, v []byte) error {
		var c dataClient
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("data-channel client %s: %w", key, err)
		}
		s.data[key] = &c
		return nil
	})
}

// errNotRegistered is RFC 8783 §5: resources live under a registered client.
func errNotRegistered(cuid string) *data.Error {
	return data.Errorf(404, data.TagInvalidValue, "dots-client %s is not registered (POST it to the dots-data root first, RFC 8783 §5.1)", cuid)
}

func errStore(err error) *data.Error {
	e := data.Errorf(503, data.TagOperationFailed, "the change could not be stored; retry")
	e.Err = err
	return e
}

// writeDataLocked replaces (nil: deletes) the client's record, in memory at
// once and on disk through the journal; the change is undone if the write
// fails. It must be called with s.mu held; the caller waits on the commit
// after unlocking.
func (s *Service) writeDataLocked(cuid string, next *dataClient) *commit {
	prev, had := s.data[cuid]
	if next == nil {
		delete(s.data, cuid)
	} else {
		s.data[cuid] = next
	}
	return s.j.add(dataOps(cuid, next), func() {
		if had {
			s.data[cuid] = prev
		} else {
			delete(s.data, cuid)
		}
	})
}

// editData is a change of a registered client's record: edit changes a
// copy (or refuses, its error returned as it is), which replaces the
// record in memory and goes to disk; a failed write is undone and
// answered with errStore.
func (s *Service) editData(cuid string, edit func(next *dataClient) error) error {
	s.mu.Lock()
	cur, ok := s.data[cuid]
	if !ok {
		s.mu.Unlock()
		return errNotRegistered(cuid)
	}
	next := cur.clone()
	if err := edit(next); err != nil {
		s.mu.Unlock()
		return err
	}
	done := s.writeDataLocked(cuid, next)
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return errStore(err)
	}
	return nil
}

// RegisterDataClient registers the client on the data channel (RFC 8783
// §5.1). With replace false (POST) an existing registration is a 409
// resource-denied; with replace true (PUT) the registration's cdid is
// updated and its aliases and ACLs are kept. created says whether it is new.
func (s *Service) RegisterDataClient(c Client, dc data.DotsClient, replace bool) (created bool, err error) {
	if dc.CUID != c.CUID {
		return false, data.Errorf(400, data.TagInvalidValue, "cuid %s in the body is not the client's cuid %s", dc.CUID, c.CUID)
	}
	if dc.Aliases != nil || dc.ACLs != nil {
		return false, data.Errorf(400, data.TagInvalidValue, "register the dots-client alone; create aliases and acls under dots-client=%s", c.CUID)
	}
	s.mu.Lock()
	cur, exists := s.data[c.CUID]
	if exists && !replace {
		s.mu.Unlock()
		return false, data.Errorf(409, data.TagResourceDenied, "dots-client %s is already registered", c.CUID)
	}
	next := &dataClient{CUID: c.CUID, CDID: dc.CDID, Domain: c.Domain.Name}
	if exists {
		next = cur.clone()
		next.CDID = dc.CDID
	}
	done := s.writeDataLocked(c.CUID, next)
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		return false, errStore(err)
	}
	if !exists {
		s.log.Info("data-channel client registered", "cuid", c.CUID, "domain", c.Domain.Name)
	}
	return !exists, nil
}

// UnregisterDataClient removes the client's registration with all its
// aliases and ACLs (RFC 8783 §5.2); its active filters are withdrawn.
func (s *Service) UnregisterDataClient(c Client) error {
	s.mu.Lock()
	if _, ok := s.data[c.CUID]; !ok {
		s.mu.Unlock()
		return errNotRegistered(c.CUID)
	}
	done := s.writeDataLocked(c.CUID, nil)
	s.mu.Unlock()
	if err := done.wait(); err != nil {
		s.reconcileACLs(c.CUID) // what a reconcile saw meanwhile is undone
		return errStore(err)
	}
	s.reconcileACLs(c.CUID)
	s.log.Info("data-channel client unregistered", "cuid", c.CUID)
	return nil
}

// DataClient returns the client's registration with its aliases and ACLs,
// pending-lifetime and statistics filled in (RFC 8783 §5, §6.2, §7.3).
func (s *Service) DataClient(c Client) (*data.DotsClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dc, ok := s.data[c.CUID]
	if !ok {
		return nil, errNotRegistered(c.CUID)
	}
	out := &data.DotsClient{CUID: dc.CUID, CDID: dc.CDID}
	if len(dc.Aliases) > 0 {
		out.Aliases = &data.Aliases{Alias: s.aliasViewsLocked(dc.Aliases)}
	}
	if len(dc.ACLs) > 0 {
		out.ACLs = &data.ACLs{ACL: s.aclViewsLocked(dc.CUID, dc.ACLs)}
	}
	return out, nil
}

// pendingLifetime is the remaining lifetime in minutes, rounded up.
func (s *Service) pendingLifetime(exp time.Time) *int32 {
	left := exp.Sub(s.now())
	m := int32((left + time.Minute - 1) / time.Minute)
	if m < 0 {
		m = 0
	}
	return &m
}

func (s *Service) aliasViewsLocked(recs []*aliasRec) []data.Alias {
	out := make([]data.Alias, len(recs))
	for i, r := range recs {
		out[i] = r.Alias
		out[i].PendingLifetime = s.pendingLifetime(r.Expires)
	}
	return out
}

// PutAliases creates aliases (RFC 8783 §6.1). With replace false (POST)
// every name must be new (409 resource-denied otherwise); with replace true
// (PUT on one alias) an existing alias is replaced and its lifetime
// refreshed. Every target-prefix, and every target-uri that is an address,
// must lie inside the client's domain (403 access-denied). created says
// whether every alias is new.
func (s *Service) PutAliases(c Client, aliases []data.Alias, replace bool) (created bool, err error) {
	for _, a := range aliases {
		if err := ownedAlias(c.Domain, &a); err != nil {
			return false, err
		}
	}
	exp := s.now().Add(DataLifetime)
	created = true
	err = s.editData(c.CUID, func(next *dataClient) error {
		for _, a := range aliases {
			a.PendingLifetime = nil
			rec := &aliasRec{Alias: a, Expires: exp}
			if i := next.alias(a.Name); i >= 0 {
				if !replace {
					return data.Errorf(409, data.TagResourceDenied, "alias %q already exists", a.Name)
				}
				next.Aliases[i] = rec
				created = false
				continue
			}
			next.Aliases = append(next.Aliases, rec)
		}
		if len(next.Aliases) > MaxAliasesPerClient {
			return data.Errorf(409, data.TagResourceDenied, "a client may hold at most %d aliases", MaxAliasesPerClient)
		}
		return nil
	})
	return created && err == nil, err
}

// ownedAlias checks the alias's addresses against the client's domain; its
// names (target-fqdn, a target-uri host that is a name) are resolved and
// checked when a mitigation request names the alias.
func ownedAlias(d *Domain, a *data.Alias) error {
	for _, p := range a.TargetPrefix {
		if !d.Owns(p.Prefix) {
			return accessDenied("alias %q: target-prefix %s is not owned by client domain %q", a.Name, p, d.Name)
		}
	}
	for _, u := range a.TargetURI {
		h, err := dots.URIHost(u)
		if err != nil {
			return data.Errorf(400, data.TagInvalidValue, "alias %q: target-uri %q: %v", a.Name, u, err)
		}
		if ip, err := netip.ParseAddr(h); err == nil && !d.Owns(netip.PrefixFrom(ip, ip.BitLen())) {
			return accessDenied("alias %q: target-uri %s: %s is not owned by client domain %q", a.Name, u, ip, d.Name)
		}
	}
	return nil
}

// accessDenied is the answer to a target outside the client's domain: 403
// with error-tag access-denied (RFC 8040 §7, RFC 8783 §6.1 and §7.2).
func accessDenied(format string, args ...any) *data.Error {
	return data.Errorf(403, data.TagAccessDenied, format, args...)
}

// Aliases returns the client's aliases (RFC 8783 §6.2); name "" means all.
func (s *Service) Aliases(c Client, name string) ([]data.Alias, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dc, ok := s.data[c.CUID]
	if !ok {
		return nil, errNotRegistered(c.CUID)
	}
	if name == "" {
		return s.aliasViewsLocked(dc.Aliases), nil
	}
	i := dc.alias(name)
	if i < 0 {
		return nil, data.Errorf(404, data.TagInvalidValue, "alias %q does not exist", name)
	}
	return s.aliasViewsLocked(dc.Aliases[i : i+1]), nil
}

// DeleteAlias deletes one of the client's aliases (RFC 8783 §6.3).
func (s *Service) DeleteAlias(c Client, name string) error {
	return s.editData(c.CUID, func(next *dataClient) error {
		i := next.alias(name)
		if i < 0 {
			return data.Errorf(404, data.TagInvalidValue, "alias %q does not exist", name)
		}
		next.Aliases = slices.Delete(next.Aliases, i, i+1)
		return nil
	})
}

// aliasTargets returns the named aliases of a client, for a signal-channel
// request (RFC 9132 §4.4.1: alias-name); an unknown name is 4.00.
func (s *Service) aliasTargets(cuid string, names []string) ([]data.Alias, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dc := s.data[cuid]
	out := make([]data.Alias, 0, len(names))
	for _, n := range names {
		if dc == nil {
			return nil, n
		}
		i := dc.alias(n)
		if i < 0 {
			return nil, n
		}
		out = append(out, dc.Aliases[i].Alias)
	}
	return out, ""
}

// tickData removes the aliases and ACLs whose lifetime ran out (RFC 8783
// §4: kept at least DataLifetime unless refreshed).
func (s *Service) tickData() {
	now := s.now()
	var changed []string
	s.mu.Lock()
	for cuid, dc := range s.data {
		expired := func(exp time.Time) bool { return !exp.After(now) }
		na := slices.DeleteFunc(slices.Clone(dc.Aliases), func(a *aliasRec) bool { return expired(a.Expires) })
		nl := slices.DeleteFunc(slices.Clone(dc.ACLs), func(a *aclRec) bool { return expired(a.Expires) })
		if len(na) == len(dc.Aliases) && len(nl) == len(dc.ACLs) {
			continue
		}
		next := dc.clone()
		next.Aliases, next.ACLs = na, nl
		s.writeDataLocked(cuid, next)
		changed = append(changed, cuid)
	}
	s.mu.Unlock()
	for _, cuid := range changed {
		s.log.Info("data-channel entries expired", "cuid", cuid)
		s.reconcileACLs(cuid)
	}
}
