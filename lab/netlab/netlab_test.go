//go:build linux

package netlab

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: this test creates network namespaces, veths and VXLAN tunnels, which needs root (CI runs as root)")
	}
}

func TestValidate(t *testing.T) {
	if err := Scrubbing().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Topology)
		want string
	}{
		{"non-documentation address", func(tp *Topology) { tp.Links[0].A.Addr = pfx("10.0.0.1/24") }, "documentation"},
		{"unknown node", func(tp *Topology) { tp.Links[0].B.Node = "nowhere" }, "unknown node"},
		{"repeated node", func(tp *Topology) { tp.Nodes[1].Name = Attacker }, "repeated"},
		{"route off the lab", func(tp *Topology) { tp.Nodes[0].Routes[0].Via = netip.MustParseAddr("10.0.0.1") }, "gateway"},
		{"tunnel end of no side", func(tp *Topology) {
			tu := ScrubdDiversion().Tunnel
			tu.Only = Edge
			tp.Tunnels = append(tp.Tunnels, tu)
		}, "neither end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := Scrubbing()
			tc.edit(&tp)
			if err := tp.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := (&Lab{}).Flood(Attacker, Flood{Src: netip.MustParseAddrPort("10.0.0.1:1"), Dst: AttackDst, Count: 1, Duration: time.Second}); err == nil {
		t.Error("a flood from a non-documentation address was accepted")
	}
	if _, err := (&Lab{}).Flood(Attacker, Flood{Src: AttackSrc, Dst: AttackDst, Count: 1}); err == nil {
		t.Error("a flood without a deadline was accepted")
	}
}

// TestScrubbingPaths moves real packets through the lab without a
// mitigation: directly, then through the scrubber and the return tunnel,
// and directly again after the diversion is removed.
func TestScrubbingPaths(t *testing.T) {
	requireRoot(t)
	l := Build(t, Scrubbing())
	echo, err := l.EchoUDP(Target, LegitDst)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	k, err := l.CountUDP(Target, AttackDst)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	d := ScrubbingDiversion()

	step := func(name string, n int) {
		t.Helper()
		if ok, err := l.Ping(Attacker, LegitSrc, LegitDst, 5, time.Second); err != nil || ok != 5 {
			t.Fatalf("%s: %d of 5 echoes answered: %v", name, ok, err)
		}
		before := k.Count()
		sent, err := l.Flood(Attacker, Flood{Src: AttackSrc, Dst: AttackDst, Count: n, Size: 64, Duration: 5 * time.Second})
		if err != nil || sent != n {
			t.Fatalf("%s: sent %d of %d: %v", name, sent, n, err)
		}
		waitCount(t, k, before+n, 10*time.Second)
		if got := k.Count() - before; got != n {
			t.Fatalf("%s: target got %d of %d", name, got, n)
		}
	}
	step("direct", 500)
	if err := l.Divert(d, true); err != nil {
		t.Fatal(err)
	}
	rx0 := l.TunnelRx(Target, ReturnTunnel)
	step("diverted", 500)
	if rx := l.TunnelRx(Target, ReturnTunnel) - rx0; rx < 500 {
		t.Errorf("diverted: %d packets came over the tunnel, want >= 500", rx)
	}
	if err := l.Undivert(d, true); err != nil {
		t.Fatal(err)
	}
	step("after undivert", 100)
	checkUndiverted(t, l)
}

func waitCount(t *testing.T, k *Counter, want int, max time.Duration) {
	t.Helper()
	for end := time.Now().Add(max); k.Count() < want && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
}

// checkUndiverted fails t if the diversion left anything behind.
func checkUndiverted(t *testing.T, l *Lab) {
	t.Helper()
	left, err := l.Leftovers(ScrubbingDiversion())
	if err != nil || !left.Empty() {
		t.Errorf("after undivert: %v %v", left, err)
	}
}
