package bgp

// nlriIndex holds, per family and NLRI, the live routes that announce it,
// in the order they were announced. Routes of different kinds can share an
// NLRI: the scrubbing on-ramp and the RTBH route of one target are both
// that target's unicast prefix, with other next hops and communities. The
// RIB holds one path per NLRI, the last announced, so a route that goes
// while another with its NLRI stays must not be deleted from the RIB (that
// would withdraw the other): the survivor is announced again if it is not
// the one the RIB holds.
type nlriIndex map[string][]*route

func nlriKey(r *route) string { return familyName(r.family) + " " + r.path.Nlri.String() }

// add records r as announced last for its NLRI.
func (x nlriIndex) add(r *route) {
	k := nlriKey(r)
	x[k] = append(x[k], r)
}

// remove forgets r. held is whether r was the path in the RIB; next is the
// route that must be there now (nil: none is left for the NLRI).
func (x nlriIndex) remove(r *route) (held bool, next *route) {
	k := nlriKey(r)
	rs := x[k]
	for i, o := range rs {
		if o != r {
			continue
		}
		held = i == len(rs)-1
		rs = append(rs[:i:i], rs[i+1:]...)
		break
	}
	if len(rs) == 0 {
		delete(x, k)
		return held, nil
	}
	x[k] = rs
	return held, rs[len(rs)-1]
}
