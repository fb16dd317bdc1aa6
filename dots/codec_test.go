package dots

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// h decodes hex written with optional spaces.
func h(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad test hex %q: %v", s, err)
	}
	return b
}

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

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		is   error  // sentinel the *Error wraps, if any
		diag string // substring of Diag, if any
	}{
		{name: "empty payload", hex: "", is: ErrEmpty},
		{name: "tag 271 and nothing else", hex: "D9 01 0F"},
		{name: "not a map (array)", hex: "82 01 02", is: ErrNotMap},
		{name: "not a map (integer)", hex: "01", is: ErrNotMap},
		{name: "not a map (tagged map)", hex: "C6 A0", is: ErrNotMap},
		{name: "tag 271 before an array", hex: "D9 01 0F 80", is: ErrNotMap},
		{name: "truncated", hex: "A1 01 A1 02 81"},
		{name: "trailing bytes", hex: "A0 00", is: ErrTrailingData, diag: "1 bytes"},
		{name: "trailing map", hex: "A1 18 31 A0 A0", is: ErrTrailingData},
		{name: "duplicate map key", hex: "A2 01 A0 01 A0"},
		{name: "duplicate key inside scope", hex: "A1 01 A1 02 81 A2 0E 01 0E 02"},
		{name: "text map key", hex: "A1 61 61 01", is: ErrBadMapKeyType, diag: "not an unsigned integer"},
		{name: "negative map key", hex: "A1 20 01", is: ErrBadMapKeyType},
		{name: "text key inside scope", hex: "A1 01 A1 02 81 A1 61 61 01", is: ErrBadMapKeyType, diag: "scope"},
		{name: "key above int64", hex: "A1 1B FFFFFFFFFFFFFFFF 01"},
		{name: "unknown required key 60 at top level", hex: "A1 18 3C 01", is: ErrUnknownKey, diag: "60"},
		{name: "unknown required key 60 in a scope", hex: "A1 01 A1 02 81 A2 0E 19 0E10 18 3C 01", is: ErrUnknownKey, diag: "60"},
		{name: "unknown required key 60 in a tagged map", hex: "A1 01 C6 A1 02 81 A1 18 3C 01", is: ErrUnknownKey, diag: "60"},
		{name: "unknown required key 0", hex: "A1 00 01", is: ErrUnknownKey, diag: "key 0"},
		{name: "unknown required key 300 in a scope", hex: "A1 01 A1 02 81 A1 19 012C 01", is: ErrUnknownKey, diag: "300"},
		{name: "unknown required key in the config", hex: "A1 18 1E A1 18 20 A1 18 7F 01", is: ErrUnknownKey, diag: "127 in ietf-dots-signal-channel:signal-config/mitigating-config"},
		{name: "lifetime is a text string", hex: "A1 01 A1 02 81 A1 0E 63 616263", diag: "lifetime"},
		{name: "lifetime is a float", hex: "A1 01 A1 02 81 A1 0E F9 3C00", diag: "lifetime"},
		{name: "mid is negative", hex: "A1 01 A1 02 81 A1 05 20", diag: "mid"},
		{name: "status above uint32", hex: "A1 01 A1 02 81 A1 10 1B 0000000100000000", diag: "status"},
		{name: "lower-port above uint16", hex: "A1 01 A1 02 81 A1 07 81 A1 08 1A 00010000", diag: "lower-port"},
		{name: "scope is a map", hex: "A1 01 A1 02 A0", diag: "scope"},
		{name: "target-prefix holds an integer", hex: "A1 01 A1 02 81 A1 06 81 01", diag: "target-prefix"},
		{name: "invalid UTF-8 in alt-server", hex: "A1 18 2E A1 18 2F 61 FF"},
		{name: "heartbeat-interval max-value is text", hex: "A1 18 1E A1 18 20 A1 18 21 A1 18 22 61 78", diag: "heartbeat-interval/max-value has"},
		{name: "peer-hb-status is an integer", hex: "A1 18 31 A1 18 33 01", diag: "peer-hb-status"},
		{name: "decimal with bad tag", hex: "A1 18 1E A1 18 20 A1 18 27 A1 18 2B C5 82 21 18 C8", is: ErrBadDecimal, diag: "ack-timeout/current-value-decimal"},
		{name: "decimal without tag", hex: "A1 18 1E A1 18 20 A1 18 27 A1 18 2B 82 21 18 C8", is: ErrBadDecimal},
		{name: "decimal with one element", hex: "A1 18 1E A1 18 20 A1 18 27 A1 18 2B C4 81 21", is: ErrBadDecimal},
		{name: "decimal with 3 fraction digits", hex: "A1 18 1E A1 18 20 A1 18 28 A1 18 2B C4 82 22 19 07D1", is: ErrBadDecimal, diag: "ack-random-factor"},
		{name: "decimal out of range", hex: "A1 18 1E A1 18 2C A1 18 27 A1 18 29 C4 82 18 20 01", is: ErrBadDecimal, diag: "max-value-decimal"},
		{name: "nesting too deep", hex: "A1 01 A1 02 81 A1 06" + strings.Repeat("81", 20) + "01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(h(t, tc.hex))
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", m)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if pe.Code != BadRequest {
				t.Errorf("code %v, want 4.00", pe.Code)
			}
			if pe.Diag == "" {
				t.Error("empty diagnostic")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if !strings.Contains(pe.Diag, tc.diag) {
				t.Errorf("diagnostic %q does not mention %q", pe.Diag, tc.diag)
			}
			if CodeOf(err) != BadRequest {
				t.Errorf("CodeOf = %v", CodeOf(err))
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want string // canonical re-encoding
	}{
		{name: "optional key 200 in a scope", hex: "A1 01 A1 02 81 A2 0E 19 0E10 18 C8 61 78", want: "A101A10281A10E190E10"},
		{name: "optional key 200 at top level, its content unchecked", hex: "A2 01 A1 02 81 A1 0E 19 0E10 18 C8 A1 18 3C 01", want: "A101A10281A10E190E10"},
		{name: "optional key 49152 at top level", hex: "A2 19 C000 01 18 31 A1 18 33 F4", want: "A11831A11833F4"},
		{name: "optional keys 16384, 32768 and 65535", hex: "A4 18 31 A0 19 4000 01 19 8000 80 19 FFFF F6", want: "A11831A0"},
		{name: "optional key 128 in the config", hex: "A1 18 1E A1 18 20 A2 18 80 01 18 21 A1 18 24 0A", want: "A1181EA11820A11821A118240A"},
		{name: "tag 271 prefix", hex: "D9 010F A1 18 31 A1 18 33 F5", want: "A11831A11833F5"},
		{name: "keys out of order", hex: "A1 01 A1 02 81 A2 0E 19 0E10 05 18 7B", want: "A101A10281A205187B0E190E10"},
		{name: "lifetime -1", hex: "A1 01 A1 02 81 A1 0E 20", want: "A101A10281A10E20"},
		{name: "decimal exponent -1", hex: "A1 18 1E A1 18 20 A1 18 28 A1 18 2B C4 82 20 0F", want: "A1181EA11820A11828A1182BC482211896"},
		{name: "decimal exponent 0", hex: "A1 18 1E A1 18 20 A1 18 27 A1 18 2B C4 82 00 02", want: "A1181EA11820A11827A1182BC4822118C8"},
		{name: "indefinite lengths", hex: "BF 01 BF 02 9F A1 0E 01 FF FF FF", want: "A101A10281A10E01"},
		{name: "empty map", hex: "A0", want: "A0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(h(t, tc.hex))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(got, h(t, tc.want)) {
				t.Errorf("re-encoding:\n got %X\nwant %s", got, tc.want)
			}
		})
	}
}

// TestDecodeExtremeDecimalExponent guards against the normalisation loop
// running once per unit of exponent.
func TestDecodeExtremeDecimalExponent(t *testing.T) {
	for _, exp := range []string{"3B 7FFFFFFFFFFFFFFF", "1B 7FFFFFFFFFFFFFFF"} { // -2^63, 2^63-1
		body := h(t, "A1 18 1E A1 18 20 A1 18 27 A1 18 2B C4 82"+exp+"00")
		done := make(chan error, 1)
		go func() {
			_, err := Decode(body)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("exponent %s with mantissa 0: %v", exp, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("exponent %s: Decode did not return", exp)
		}
	}
}

func TestEncodeDeterministic(t *testing.T) {
	m := &Message{SignalConfig: &SignalConfig{
		SID:              Ptr[uint32](123),
		IdleConfig:       &ConfigSet{ProbingRate: &Uint16Param{CurrentValue: Ptr[uint16](5)}, HeartbeatInterval: &Uint16Param{CurrentValue: Ptr[uint16](0)}},
		MitigatingConfig: &ConfigSet{AckTimeout: &DecimalParam{CurrentValue: Ptr[Decimal](200)}},
	}}
	want := "A1181EA3181F187B1820A11827A1182BC4822118C8182CA21821A11824001832A1182405"
	for range 3 {
		if got := strings.ToUpper(hex.EncodeToString(MustEncode(m))); got != want {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	}
}

func TestComprehensionRequired(t *testing.T) {
	required := []uint64{0, 1, 53, 60, 127, 256, 300, 16383}
	optional := []uint64{128, 200, 255, 16384, 32767, 32768, 49151, 49152, 65535}
	for _, k := range required {
		if !ComprehensionRequired(k) {
			t.Errorf("key %d should be comprehension-required", k)
		}
	}
	for _, k := range optional {
		if ComprehensionRequired(k) {
			t.Errorf("key %d should be comprehension-optional", k)
		}
	}
}

func TestKeyNames(t *testing.T) {
	// RFC 9132 Table 5, including the max/min order of keys 34/35 and 41/42.
	want := map[uint64]string{
		1: "ietf-dots-signal-channel:mitigation-scope", 14: "lifetime", 29: "attack-status",
		30: "ietf-dots-signal-channel:signal-config", 34: "max-value", 35: "min-value", 36: "current-value",
		41: "max-value-decimal", 42: "min-value-decimal", 43: "current-value-decimal",
		49: "ietf-dots-signal-channel:heartbeat", 51: "peer-hb-status",
	}
	for k, n := range want {
		if got := KeyName(k); got != n {
			t.Errorf("KeyName(%d) = %q, want %q", k, got, n)
		}
	}
	for k := uint64(1); k <= 53; k++ {
		if _, ok := KeyNames[k]; !ok {
			t.Errorf("key %d has no name", k)
		}
	}
	if got := KeyName(60); got != "key 60" {
		t.Errorf("KeyName(60) = %q", got)
	}
	if got := KeyName(18446744073709551615); got != "key 18446744073709551615" {
		t.Errorf("KeyName(max) = %q", got)
	}
}

func TestErrorType(t *testing.T) {
	if got := BadRequest.String(); got != "4.00" {
		t.Errorf("BadRequest = %s", got)
	}
	if got := UnprocessableEntity.String(); got != "4.22" {
		t.Errorf("UnprocessableEntity = %s", got)
	}
	if got := ServiceUnavailable.String(); got != "5.03" {
		t.Errorf("ServiceUnavailable = %s", got)
	}
	if CodeOf(errors.New("plain")) != InternalServerError {
		t.Error("CodeOf(plain error) is not 5.00")
	}
	e := Errorf(Conflict, "mid %d overlaps", 7)
	if e.Error() != "4.09 mid 7 overlaps" || CodeOf(e) != Conflict {
		t.Errorf("Errorf: %v", e)
	}
	wrapped := &Error{Code: BadRequest, Diag: "x", Err: ErrEmpty}
	if !errors.Is(wrapped, ErrEmpty) || !strings.Contains(wrapped.Error(), "empty payload") {
		t.Errorf("Unwrap/Error: %v", wrapped)
	}
}
