package dots

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestFigure8(t *testing.T) {
	want := "A101A10281A4068274323030313A6462383A363430313A3A312F31323874323030313A6462383A363430313A3A322F3132380783A1081850A1081901BBA108191F900A81060E190E10"
	m := &Message{MitigationScope: &MitigationScope{Scope: []Scope{{
		TargetPrefix:    []string{"2001:db8:6401::1/128", "2001:db8:6401::2/128"},
		TargetPortRange: []PortRange{{LowerPort: 80}, {LowerPort: 443}, {LowerPort: 8080}},
		TargetProtocol:  []uint32{6},
		Lifetime:        Ptr[int64](3600),
	}}}}
	got := strings.ToUpper(hex.EncodeToString(MustEncode(m)))
	if got != want {
		t.Fatalf("encode:\n got %s\nwant %s", got, want)
	}
}
