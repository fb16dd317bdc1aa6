package mitigation

import "net/netip"

// index finds the requests that may overlap a new one without visiting
// every request of every client: targets are bucketed by their covering /16
// (IPv4) or /32 (IPv6); shorter targets and names are kept apart.
type index struct {
	buckets map[netip.Prefix]map[*Record]struct{}
	wide    map[*Record]struct{} // a target shorter than its bucket
	names   map[string]map[*Record]struct{}
}

func newIndex() *index {
	return &index{buckets: map[netip.Prefix]map[*Record]struct{}{}, wide: map[*Record]struct{}{}, names: map[string]map[*Record]struct{}{}}
}

func bucketOf(p netip.Prefix) (netip.Prefix, bool) {
	bits := 16
	if p.Addr().Is6() {
		bits = 32
	}
	if p.Bits() < bits {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(p.Addr(), bits).Masked(), true
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

func (ix *index) add(r *Record) {
	for _, p := range r.Prefixes {
		if b, ok := bucketOf(p); ok {
			addTo(ix.buckets, b, r)
		} else {
			ix.wide[r] = struct{}{}
		}
	}
	for _, n := range recordNames(r) {
		addTo(ix.names, n, r)
	}
}

func (ix *index) del(r *Record) {
	for _, p := range r.Prefixes {
		if b, ok := bucketOf(p); ok {
			delFrom(ix.buckets, b, r)
		}
	}
	delete(ix.wide, r)
	for _, n := range recordNames(r) {
		delFrom(ix.names, n, r)
	}
}

// candidates calls fn for every indexed request that may overlap r (a
// superset of those that do; fn still checks). It reports false when r has a
// target too wide for the buckets, and the caller must look at everything.
func (ix *index) candidates(r *Record, fn func(*Record)) bool {
	seen := map[*Record]bool{}
	visit := func(o *Record) {
		if !seen[o] {
			seen[o] = true
			fn(o)
		}
	}
	for _, p := range r.Prefixes {
		b, ok := bucketOf(p)
		if !ok {
			return false
		}
		for o := range ix.buckets[b] {
			visit(o)
		}
	}
	for o := range ix.wide {
		visit(o)
	}
	for _, n := range recordNames(r) {
		for o := range ix.names[n] {
			visit(o)
		}
	}
	return true
}
