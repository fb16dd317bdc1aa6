package dots

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The golden vectors under testdata/golden are the examples of RFC 9132:
// NAME.hex is the CBOR body (uppercase hex; Figures 8, 10, 11 and 27 copied
// from the spec digest, the others derived by hand from the CBOR diagnostic
// and checked with an independent encoder, never with Encode) and NAME.json
// is the RFC 7951 JSON of the figure.
var goldenNames = []string{
	"fig07_mitigation_request",  // Figures 7 and 8
	"fig10_mitigation_response", // Figure 10
	"fig11_cuid_collision",      // Figure 11
	"fig14_get_response",        // Figure 14, one entry
	"fig16_efficacy_update",     // Figure 16
	"fig20_config_get_response", // Figure 20
	"fig23_config_put",          // Figure 23
	"fig26_redirected_signal",   // Figure 26
	"fig27_heartbeat",           // Figure 27
}

// readHex reads a .hex file, ignoring white space.
func readHex(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(raw)), ""))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// jsonEqual compares two JSON documents as values, not as text.
func jsonEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		gn, _ := json.Marshal(g)
		wn, _ := json.Marshal(w)
		t.Errorf("JSON differs:\n got %s\nwant %s", gn, wn)
	}
}

func TestGoldenListComplete(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(goldenNames) {
		t.Errorf("testdata/golden holds %d .hex files, the table names %d", len(files), len(goldenNames))
	}
	for _, name := range goldenNames {
		for _, ext := range []string{".hex", ".json"} {
			if _, err := os.Stat(filepath.Join("testdata", "golden", name+ext)); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestGolden(t *testing.T) {
	for _, name := range goldenNames {
		t.Run(name, func(t *testing.T) {
			base := filepath.Join("testdata", "golden", name)
			raw, err := os.ReadFile(base + ".hex")
			if err != nil {
				t.Fatal(err)
			}
			if s := strings.TrimSpace(string(raw)); s != strings.ToUpper(s) {
				t.Errorf("%s.hex is not uppercase", name)
			}
			wire := readHex(t, base+".hex")
			wantJSON, err := os.ReadFile(base + ".json")
			if err != nil {
				t.Fatal(err)
			}

			m, err := Decode(wire)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			again, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(again, wire) {
				t.Errorf("re-encoding differs:\n got %X\nwant %X", again, wire)
			}
			gotJSON, err := json.Marshal(m)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			jsonEqual(t, gotJSON, wantJSON)

			// The JSON form parses back to the same message (labels,
			// decimal strings and uint64 strings are accepted on input).
			var fromJSON Message
			if err := json.Unmarshal(wantJSON, &fromJSON); err != nil {
				t.Fatalf("json.Unmarshal: %v", err)
			}
			if b, err := Encode(&fromJSON); err != nil || !bytes.Equal(b, wire) {
				t.Errorf("JSON -> CBOR:\n got %X (%v)\nwant %X", b, err, wire)
			}

			// The optional tag 271 prefix decodes to the same message.
			tagged, err := Decode(append([]byte{0xd9, 0x01, 0x0f}, wire...))
			if err != nil {
				t.Fatalf("Decode with tag 271: %v", err)
			}
			if !reflect.DeepEqual(tagged, m) {
				t.Errorf("tag 271 prefix changed the message")
			}
		})
	}
}

// TestGoldenContents pins a few values of the vectors so that a vector and
// the codec cannot be wrong in the same way unnoticed.
func TestGoldenContents(t *testing.T) {
	load := func(name string) *Message {
		t.Helper()
		m, err := Decode(readHex(t, filepath.Join("testdata", "golden", name+".hex")))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return m
	}

	s := load("fig10_mitigation_response").MitigationScope.Scope[0]
	if *s.MID != 123 || *s.Lifetime != 3600 {
		t.Errorf("fig10: mid %d lifetime %d", *s.MID, *s.Lifetime)
	}

	ci := load("fig11_cuid_collision").MitigationScope.Scope[0].ConflictInformation
	if ci == nil || ci.ConflictCause == nil || *ci.ConflictCause != CauseCUIDCollision {
		t.Errorf("fig11: conflict-information %+v", ci)
	}

	s = load("fig14_get_response").MitigationScope.Scope[0]
	if *s.MID != 12332 || *s.MitigationStart != 1507818434 || *s.Status != StatusMitigated ||
		*s.BytesDropped != 134334555 || *s.PpsDropped != 432432 || s.TargetProtocol[0] != 17 {
		t.Errorf("fig14: %+v", s)
	}

	s = load("fig16_efficacy_update").MitigationScope.Scope[0]
	if s.Lifetime != nil || s.AttackStatus == nil || *s.AttackStatus != AttackUnderAttack || len(s.TargetPortRange) != 3 {
		t.Errorf("fig16: %+v", s)
	}

	sc := load("fig20_config_get_response").SignalConfig
	for _, set := range []*ConfigSet{sc.MitigatingConfig, sc.IdleConfig} {
		hb := set.HeartbeatInterval
		if *hb.MaxValue != 240 || *hb.MinValue != 15 || *hb.CurrentValue != 30 {
			t.Errorf("fig20: heartbeat-interval %d/%d/%d", *hb.MaxValue, *hb.MinValue, *hb.CurrentValue)
		}
		at := set.AckTimeout
		if *at.MaxValue != 3000 || *at.MinValue != 100 || *at.CurrentValue != 200 {
			t.Errorf("fig20: ack-timeout %v/%v/%v", *at.MaxValue, *at.MinValue, *at.CurrentValue)
		}
		arf := set.AckRandomFactor
		if arf.MaxValue.String() != "4.00" || arf.MinValue.String() != "1.10" || arf.CurrentValue.String() != "1.50" {
			t.Errorf("fig20: ack-random-factor %v/%v/%v", *arf.MaxValue, *arf.MinValue, *arf.CurrentValue)
		}
	}

	sc = load("fig23_config_put").SignalConfig
	if sc.SID != nil || *sc.IdleConfig.HeartbeatInterval.CurrentValue != 0 || sc.IdleConfig.MissingHBAllowed != nil ||
		*sc.MitigatingConfig.ProbingRate.CurrentValue != 15 {
		t.Errorf("fig23: %+v %+v", sc.MitigatingConfig, sc.IdleConfig)
	}

	rs := load("fig26_redirected_signal").RedirectedSignal
	if rs.AltServer != "alt-server.example" || len(rs.AltServerRecord) != 2 {
		t.Errorf("fig26: %+v", rs)
	}

	hb := load("fig27_heartbeat").Heartbeat
	if hb == nil || hb.PeerHBStatus == nil || !*hb.PeerHBStatus {
		t.Errorf("fig27: %+v", hb)
	}
}
