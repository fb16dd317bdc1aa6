package flowspec

import (
	"bytes"
	"net/netip"
	"testing"
)

// fuzzReader hands out fuzz bytes, then zeros.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// value reads a value of 0 to 4 octets, so that every field width, and
// values just past it, come up often.
func (r *fuzzReader) value() uint32 {
	var v uint32
	for range r.byte() % 5 {
		v = v<<8 | uint32(r.byte())
	}
	return v
}

// prefix reads an address of the family and a length that may be one too
// long (an invalid prefix).
func (r *fuzzReader) prefix(v6 bool) netip.Prefix {
	c := int(r.byte())
	var a netip.Addr
	if v6 {
		var b [16]byte
		for i := range b {
			b[i] = r.byte()
		}
		a = netip.AddrFrom16(b)
	} else {
		a = netip.AddrFrom4([4]byte{r.byte(), r.byte(), r.byte(), r.byte()})
	}
	return netip.PrefixFrom(a, c%(a.BitLen()+2))
}

func (r *fuzzReader) count() int {
	n := int(r.byte())
	if n&0x80 != 0 {
		return (n & 0x7f) * 8 // up to 1016 values: NLRIs of 240 octets and more
	}
	return n % 4
}

func (r *fuzzReader) ranges() []Range {
	var rs []Range
	for range r.count() {
		lo := r.value()
		hi := lo
		if r.byte()&1 != 0 {
			hi = lo + r.value() // may wrap: a reversed range
		}
		rs = append(rs, Range{lo, hi})
	}
	return rs
}

func (r *fuzzReader) terms() []BitTerm {
	var ts []BitTerm
	for range r.byte() % 4 {
		f := r.byte()
		t := BitTerm{Bits: uint16(r.byte()), Not: f&1 != 0, Match: f&2 != 0, And: f&4 != 0}
		if f&8 != 0 {
			t.Bits |= uint16(r.byte()) << 8
		}
		ts = append(ts, t)
	}
	return ts
}

// matchFromBytes builds a Match, valid or not, from fuzz input.
func matchFromBytes(data []byte) Match {
	r := &fuzzReader{data}
	flags := r.byte()
	v6 := flags&1 != 0
	var m Match
	if flags&0x10 == 0 {
		m.Destination = r.prefix(v6)
	}
	if flags&2 != 0 {
		m.Source = r.prefix(v6 != (flags&4 != 0)) // flags&4: the other family
	}
	m.Protocols = r.ranges()
	m.Ports = r.ranges()
	m.DstPorts = r.ranges()
	m.SrcPorts = r.ranges()
	m.ICMPTypes = r.ranges()
	m.ICMPCodes = r.ranges()
	m.TCPFlags = r.terms()
	m.PacketLengths = r.ranges()
	m.DSCP = r.ranges()
	m.Fragments = r.terms()
	m.FlowLabels = r.ranges()
	return m
}

// FuzzMatchNLRI: no input makes Validate, NLRI or String panic; NLRI
// succeeds exactly when Validate does; and every NLRI we produce is
// decoded by GoBGP into the rule GoBGP itself builds from the Match.
func FuzzMatchNLRI(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x00, 32, 203, 0, 113, 10, 1, 1, 6, 0})                                         // dst /32, proto =6
	f.Add([]byte{0x02, 32, 203, 0, 113, 10, 24, 198, 51, 100, 0, 0, 0, 0, 2, 2, 0x1f, 0x40, 1})  // src, dport
	f.Add([]byte{0x01, 32, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})          // v6 /32
	f.Add([]byte{0x00, 8, 10, 0, 0, 0, 0, 0, 0x84, 2, 0x1f, 0x40, 0})                            // long dport list
	f.Add([]byte{0x00, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 6, 0x10, 0, 0, 0, 0, 1, 0, 2}) // tcp flags, frag
	f.Add([]byte{0x06, 8, 10, 0, 0, 0, 48})                                                      // mixed families
	f.Fuzz(func(t *testing.T, data []byte) {
		m := matchFromBytes(data)
		_ = m.String()
		verr := m.Validate()
		nlri, err := m.NLRI()
		if (verr == nil) != (err == nil) {
			t.Fatalf("Validate: %v, NLRI: %v", verr, err)
		}
		if err != nil {
			return
		}
		if again, _ := m.NLRI(); !bytes.Equal(again, nlri) {
			t.Fatal("NLRI is not deterministic")
		}
		if _, err := crossCheck(m, nlri); err != nil {
			t.Fatalf("%s\nNLRI % x\n%v", m, nlri, err)
		}
	})
}

// TestCrossCheckDetects makes sure crossCheck is not vacuous: a corrupted
// NLRI or a different rule must fail it.
func TestCrossCheckDetects(t *testing.T) {
	m := nlriCases[len(nlriCases)-2].m // realistic v4
	nlri, err := m.NLRI()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(nlri); i++ {
		bad := bytes.Clone(nlri)
		bad[i] ^= 0x01
		if _, err := crossCheck(m, bad); err == nil {
			t.Errorf("flipping a bit of octet %d went unnoticed", i)
		}
	}
	other := m
	other.DstPorts = []Range{one(80)}
	if _, err := crossCheck(other, nlri); err == nil {
		t.Error("a different rule went unnoticed")
	}
}
