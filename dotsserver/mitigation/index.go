package mitigation

import "net/netip"

// index finds the requests that may overlap a new one without visiting
// every request of every client. Targets are kept by exact prefix and by
// prefix length: a prefix overlaps p when it contains p (one exact lookup
// per length in use that is not longer than p) or lies inside it (only
// requests with longer prefixes, scanned). Names are kept by value.
type index struct {
	exact map[netip.Prefix]map[*Record]struct{}
	byLen map[lenKey]map[*Record]struct{}
	names map[string]map[*Record]struct{}
}

type lenKey struct {
	v6   bool
	bits int
}

func newIndex() *index {
	return &index{exact: map[netip.Prefix]map[*Record]struct{}{}, byLen: map[lenKey]map[*Record]struct{}{},
		names: map[string]map[*Record]struct{}{}}
}

func recordNames(r *Record) []string {
	var out []string
	for _, f := range r.Scope.TargetFQDN {
		out = append(out, "fqdn "+f)
	}
	for _, u := range r.Scope.TargetURI {
		out = append(out, "uri "+u)
	}
	for _, a := range r.Scope.AliasName {
		out = append(out, "alias "+a)
	}
	return out
}

func addTo[K comparable](m map[K]map[*Record]struct{}, k K, r *Record) {
	s := m[k]
	if s == nil {
		s = map[*Record]struct{}{}
		m[k] = s
	}
	s[r] = struct{}{}
}

func delFrom[K comparable](m map[K]map[*Record]struct{}, k K, r *Record) {
	if s := m[k]; s != nil {
		delete(s, r)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

func keyOf(p netip.Prefix) lenKey { return lenKey{v6: p.Addr().Is6(), bits: p.Bits()} }

func (ix *index) add(r *Record) {
	for _, p := range r.Prefixes {
		addTo(ix.exact, p.Masked(), r)
		addTo(ix.byLen, keyOf(p), r)
	}
	for _, n := range recordNames(r) {
		addTo(ix.names, n, r)
	}
}

func (ix *index) del(r *Record) {
	for _, p := range r.Prefixes {
		delFrom(ix.exact, p.Masked(), r)
		delFrom(ix.byLen, keyOf(p), r)
	}
	for _, n := range recordNames(r) {
		delFrom(ix.names, n, r)
	}
}

// candidates calls fn once for every indexed request that may overlap r (a
// superset of those that do; fn still checks).
func (ix *index) candidates(r *Record, fn func(*Record)) {
	names := recordNames(r)
	var seen map[*Record]bool
	if len(r.Prefixes)+len(names) > 1 {
		seen = map[*Record]bool{}
	}
	visit := func(o *Record) {
		if seen != nil {
			if seen[o] {
				return
			}
			seen[o] = true
		}
		fn(o)
	}
	for _, p := range r.Prefixes {
		v6 := p.Addr().Is6()
		for lk, set := range ix.byLen {
			switch {
			case lk.v6 != v6:
			case lk.bits <= p.Bits(): // containing prefixes of this length: one lookup
				for o := range ix.exact[netip.PrefixFrom(p.Addr(), lk.bits).Masked()] {
					visit(o)
				}
			default: // longer prefixes: inside p or not
				for o := range set {
					visit(o)
				}
			}
		}
	}
	for _, n := range names {
		for o := range ix.names[n] {
			visit(o)
		}
	}
}
