package scrub

import (
	"context"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"go.uber.org/goleak"
)

// untrackedProbe installs, beside the node, an input chain that counts
// packets conntrack did not track, and returns a reader of that count.
func untrackedProbe(t testing.TB, l *lab) func() uint64 {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(l.recv)))
	must(t, err)
	tb := c.AddTable(&nftables.Table{Name: "probe", Family: nftables.TableFamilyINet})
	ch := c.AddChain(&nftables.Chain{Name: "input", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitUNTRACKED), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Counter{},
	}})
	must(t, c.Flush())
	return func() uint64 {
		rules, err := c.GetRules(tb, ch)
		must(t, err)
		for _, e := range rules[0].Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				return ctr.Packets
			}
		}
		t.Fatal("probe counter not found")
		return 0
	}
}

func TestNFTNoTrack(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := newLab(t)
	ctx := context.Background()
	untracked := untrackedProbe(t, l)
	n, err := NewNFT(NFTOptions{Interface: "sb", NetNS: int(l.recv), NoTrack: true})
	must(t, err)
	d := Desired{Mitigations: []Mitigation{mitigation("a/1", "203.0.113.10/32", "2001:db8:200::/64")}}
	listener := l.udp(t, l.recv, "203.0.113.10:5000")
	src := l.udp(t, l.sender, "198.51.100.2:5000")

	send(t, src, "203.0.113.10:5000", 10)
	if got := drain(t, listener, 100*time.Millisecond); got != 10 || untracked() != 0 {
		t.Fatalf("before Set: delivered %d, untracked %d; want 10, 0", got, untracked())
	}
	must(t, n.Set(ctx, d))
	must(t, n.Set(ctx, d)) // the inet table is replaced: same result
	send(t, src, "203.0.113.10:5000", 10)
	if got := drain(t, listener, 100*time.Millisecond); got != 10 || untracked() != 10 {
		t.Fatalf("with notrack: delivered %d, untracked %d; want 10, 10", got, untracked())
	}
	must(t, n.Close())
	if got := tablesIn(t, l.recv); got != 1 { // the probe
		t.Fatalf("%d tables after Close, want only the probe", got)
	}
}
