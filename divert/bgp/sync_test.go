package bgp

import (
	"testing"

	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/levee-dots/levee/flowspec"
)

// TestUpdateBuckets: FlowSpec rules with one action are spread over MED
// values so that no value holds maxNLRIBytes of NLRI or more (GoBGP packs
// equal attributes together, FRR refuses 4,096 octets); the first bucket
// has no MED, and freed room is used again.
func TestUpdateBuckets(t *testing.T) {
	b := &Backend{cfg: baseConfig()}
	_ = b.cfg.Validate()
	pl := &plan{kind: KindFlowSpec}
	for _, d := range flowDiversions(2000) {
		if err := b.flowRoutes(pl, KindFlowSpec, d, flowspec.Action{Kind: flowspec.Discard}); err != nil {
			t.Fatal(err)
		}
	}
	var u updateBuckets
	bytes := map[uint32]int{} // NLRI octets per MED (0: none)
	for _, r := range pl.routes {
		u.place(r)
		med, n := uint32(0), 0
		for _, a := range r.path.Attrs {
			if m, ok := a.(*gbgp.PathAttributeMultiExitDisc); ok {
				med = m.Value
				n++
			}
		}
		if n > 1 || (med == 0) != (r.bucket == 0) || int(med) != r.bucket {
			t.Fatalf("route in bucket %d has %d MED attributes, MED %d", r.bucket, n, med)
		}
		bytes[med] += r.path.Nlri.Len()
	}
	total := 0
	for med, n := range bytes {
		if n > maxNLRIBytes {
			t.Fatalf("MED %d holds %d NLRI octets, more than %d", med, n, maxNLRIBytes)
		}
		total += n
	}
	if want := (total + maxNLRIBytes - 1) / maxNLRIBytes; len(bytes) > want+1 {
		t.Fatalf("%d octets in %d buckets, want about %d", total, len(bytes), want)
	}
	// Releasing a route of bucket 0 makes room there for the next one.
	first := pl.routes[0]
	u.release(first)
	again := *first
	u.place(&again)
	if again.bucket != 0 {
		t.Fatalf("a route placed after a release went to bucket %d, want the freed room in bucket 0", again.bucket)
	}
}
