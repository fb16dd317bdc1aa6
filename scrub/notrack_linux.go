package scrub

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The notrack table (NFTOptions.NoTrack) is family inet and holds no
// counters, so each Set replaces it whole inside the same transaction.
const notrackChain = "prerouting"

func (n *NFT) inetTable() *nftables.Table {
	return &nftables.Table{Name: n.opts.TableName, Family: nftables.TableFamilyINet}
}

// notrackBatch queues the replacement of the inet table: a raw-priority
// prerouting chain that exempts packets from the device to any target from
// conntrack. exists says whether the table is there now.
func (n *NFT) notrackBatch(c *nftables.Conn, b *builder, exists bool, p *plan) error {
	t := n.inetTable()
	if exists {
		c.DelTable(t)
	}
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{Name: notrackChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw})
	var t4, t6 []netip.Prefix
	for _, m := range p.mits {
		t4 = append(t4, m.targets4...)
		t6 = append(t6, m.targets6...)
	}
	for _, fam := range []struct {
		name   string
		key    nftables.SetDatatype
		proto  byte
		off, n uint32
		el     []nftables.SetElement
	}{
		{set4Name, nftables.TypeIPAddr, unix.NFPROTO_IPV4, 16, 4, prefixElems(merge(t4))},
		{set6Name, nftables.TypeIP6Addr, unix.NFPROTO_IPV6, 24, 16, prefixElems(merge(t6))},
	} {
		s := &nftables.Set{Table: t, ID: b.id(), Name: fam.name, Interval: true, KeyType: fam.key}
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("scrub: notrack set %s: %w", fam.name, err)
		}
		if err := addElems(c, s, fam.el); err != nil {
			return err
		}
		ifname := make([]byte, unix.IFNAMSIZ)
		copy(ifname, n.opts.Interface)
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname},
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fam.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.off, Len: fam.n},
			&expr.Lookup{SourceRegister: 1, SetID: s.ID, SetName: s.Name},
			&expr.Notrack{},
		}})
	}
	return nil
}

// addElems adds el to s in messages of at most about elemChunk elements,
// keeping an interval's start and end in one message.
func addElems(c *nftables.Conn, s *nftables.Set, el []nftables.SetElement) error {
	for i := 0; i < len(el); {
		j := min(i+elemChunk, len(el))
		for j < len(el) && el[j].IntervalEnd {
			j++
		}
		if err := c.SetAddElements(s, el[i:j]); err != nil {
			return fmt.Errorf("scrub: set %s: %w", s.Name, err)
		}
		i = j
	}
	return nil
}
