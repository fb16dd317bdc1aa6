package bgp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"

	api "github.com/osrg/gobgp/v4/api"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
)

func (p *peer) count(b testing.TB, f gbgp.Family) int {
	n := 0
	_ = p.s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}, func(gbgp.NLRI, []*apiutil.Path) { n++ })
	return n
}

// BenchmarkFlowSpec10k announces 10,000 FlowSpec rules (one mitigation each:
// ten targets in 203.0.113.0/24 times a thousand destination ports) to a
// GoBGP peer and withdraws them, reporting the seconds until the peer holds
// all of them and until it holds none. Target: 10,000 rules in <= 10 s.
func BenchmarkFlowSpec10k(b *testing.B) {
	const n = 10000
	for i := 0; i < b.N; i++ {
		p := startPeer(b, "127.0.0.29", all4...)
		cfg := baseConfig(p)
		cfg.Neighbors[0].FlowSpecBudget = 2 * n
		cfg.MaxRoutesPerDomain = 2 * n
		sp, err := New(context.Background(), cfg, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		_ = sp.Sync(context.Background(), nil)
		for deadline := time.Now().Add(15 * time.Second); !sp.Neighbors()[0].Established; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatal("peer not established")
			}
		}
		ds := make([]divert.Diversion, n)
		for j := range ds {
			target := netip.AddrFrom4([4]byte{203, 0, 113, byte(j / 1000)})
			ds[j] = divert.Diversion{Key: divert.Key{CUID: "bench", MID: uint32(j)}, Domain: "beta",
				Prefixes: []netip.Prefix{netip.PrefixFrom(target, 32)}, Protocols: []uint8{17},
				Ports: []dots.PortRange{{LowerPort: uint16(1024 + j%1000)}}}
		}
		start := time.Now()
		for _, d := range ds {
			if a, err := sp.Apply(context.Background(), d); err != nil || a.Status != dots.StatusMitigated {
				b.Fatalf("apply: %v %+v", err, a)
			}
		}
		applied := time.Since(start)
		for p.count(b, gbgp.RF_FS_IPv4_UC) < n {
			time.Sleep(10 * time.Millisecond)
		}
		announced := time.Since(start)
		start = time.Now()
		for _, d := range ds {
			_ = sp.Withdraw(context.Background(), d.Key)
		}
		for p.count(b, gbgp.RF_FS_IPv4_UC) > 0 {
			time.Sleep(10 * time.Millisecond)
		}
		withdrawn := time.Since(start)
		b.ReportMetric(applied.Seconds(), "s-apply-10k")
		b.ReportMetric(announced.Seconds(), "s-announce-10k")
		b.ReportMetric(withdrawn.Seconds(), "s-withdraw-10k")
		sp.Close()
	}
}

// flowDiversions returns n FlowSpec diversions of domain beta, one rule
// each: targets in 203.0.113.0/24 times distinct UDP destination ports.
func flowDiversions(n int) []divert.Diversion {
	ds := make([]divert.Diversion, n)
	for j := range ds {
		target := netip.AddrFrom4([4]byte{203, 0, 113, byte(j / 1000)})
		ds[j] = divert.Diversion{Key: divert.Key{CUID: "bench", MID: uint32(j)}, Domain: "beta",
			Prefixes: []netip.Prefix{netip.PrefixFrom(target, 32)}, Protocols: []uint8{17},
			Ports: []dots.PortRange{{LowerPort: uint16(1024 + j%1000)}}}
	}
	return ds
}

// BenchmarkSync10k measures Sync of 10,000 FlowSpec diversions into a
// fresh speaker (the restart path: the routes go into the RIB, then the
// neighbor is added) and the time until an in-process GoBGP peer holds
// all of them.
func BenchmarkSync10k(b *testing.B) {
	const n = 10000
	ds := flowDiversions(n)
	for i := 0; i < b.N; i++ {
		p := startPeer(b, "127.0.0.29", all4...)
		cfg := baseConfig(p)
		cfg.Neighbors[0].FlowSpecBudget = 2 * n
		cfg.MaxRoutesPerDomain = 2 * n
		sp, err := New(context.Background(), cfg, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := sp.Sync(context.Background(), ds); err != nil {
			b.Fatal(err)
		}
		synced := time.Since(start)
		for deadline := time.Now().Add(60 * time.Second); p.count(b, gbgp.RF_FS_IPv4_UC) < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("peer holds %d of %d rules after 60 s", p.count(b, gbgp.RF_FS_IPv4_UC), n)
			}
		}
		b.ReportMetric(synced.Seconds(), "s-sync-10k")
		b.ReportMetric(time.Since(start).Seconds(), "s-at-peer-10k")
		sp.Close()
	}
}
