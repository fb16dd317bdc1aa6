package dots

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func TestDecimalString(t *testing.T) {
	tests := []struct {
		d    Decimal
		want string
	}{
		{0, "0.00"},
		{5, "0.05"},
		{-5, "-0.05"},
		{110, "1.10"},
		{150, "1.50"},
		{200, "2.00"},
		{-150, "-1.50"},
		{3000, "30.00"},
		{24700, "247.00"},
		{math.MaxInt64, "92233720368547758.07"},
		{math.MinInt64, "-92233720368547758.08"},
	}
	for _, tc := range tests {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("Decimal(%d).String() = %q, want %q", int64(tc.d), got, tc.want)
		}
		back, err := ParseDecimal(tc.want)
		if err != nil || back != tc.d {
			t.Errorf("ParseDecimal(%q) = %d, %v; want %d", tc.want, back, err, tc.d)
		}
	}
}

func TestParseDecimal(t *testing.T) {
	good := map[string]Decimal{
		"2": 200, "2.0": 200, "2.00": 200, "1.5": 150, "0.05": 5, "-0.05": -5, "+1.10": 110,
		"030.00": 3000, "1.": 100, "-0": 0,
	}
	for in, want := range good {
		if got, err := ParseDecimal(in); err != nil || got != want {
			t.Errorf("ParseDecimal(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := []string{"", "-", ".5", "1.234", "abc", "1.-1", "1.+1", "--5", "-+5", "1e3", " 1", "1.5 ",
		"0x10", "1_000", "92233720368547758.08", "-92233720368547758.09", "99999999999999999999"}
	for _, in := range bad {
		if got, err := ParseDecimal(in); err == nil {
			t.Errorf("ParseDecimal(%q) = %d, want an error", in, got)
		}
	}
}

func TestDecimalCBOR(t *testing.T) {
	enc := map[Decimal]string{
		200:  "C4 82 21 18 C8", // RFC 9132 §6: "2.00"
		150:  "C4 82 21 18 96",
		0:    "C4 82 21 00",
		-5:   "C4 82 21 24",
		3000: "C4 82 21 19 0BB8",
	}
	for d, want := range enc {
		got, err := d.MarshalCBOR()
		if err != nil || !bytes.Equal(got, h(t, want)) {
			t.Errorf("Decimal(%d).MarshalCBOR() = %X, %v; want %s", d, got, err, want)
		}
	}

	decode := []struct {
		exp, mant int64
		want      Decimal
	}{
		{-2, 200, 200},
		{-1, 15, 150}, // 1.5
		{0, 2, 200},   // 2
		{1, 3, 3000},  // 30
		{-3, 1500, 150},
		{-10, 15000000000, 150},
		{-2, -5, -5},
		{-1, -15, -150},
		{math.MinInt64, 0, 0},
		{math.MaxInt64, 0, 0},
		{-2, math.MaxInt64, math.MaxInt64},
		{-2, math.MinInt64, math.MinInt64},
	}
	for _, tc := range decode {
		b, err := cbor.Marshal(cbor.Tag{Number: 4, Content: []int64{tc.exp, tc.mant}})
		if err != nil {
			t.Fatal(err)
		}
		var d Decimal
		if err := d.UnmarshalCBOR(b); err != nil || d != tc.want {
			t.Errorf("tag 4 [%d, %d] = %d, %v; want %d", tc.exp, tc.mant, d, err, tc.want)
		}
	}

	bad := []string{
		"C4 82 22 19 07D1",                  // [-3, 2001]: three fraction digits
		"C4 82 18 20 01",                    // [32, 1]: out of range
		"C4 82 00 1B 7FFFFFFFFFFFFFFF",      // [0, MaxInt64]: out of range
		"C4 82 3B 7FFFFFFFFFFFFFFF 01",      // [-2^63, 1]
		"C5 82 21 18 C8",                    // tag 5 (bigfloat)
		"82 21 18 C8",                       // untagged
		"C4 83 21 18 C8 00",                 // three elements
		"C4 81 21",                          // one element
		"C4 82 21 FB 3FF8000000000000",      // float mantissa
		"C4 82 21 C2 49 010000000000000000", // bignum mantissa
		"C4 82 1B FFFFFFFFFFFFFFFF 01",      // exponent above int64
		"C4 A0",                             // map content
		"63 322E30",                         // text "2.0"
		"C4",                                // truncated
		"D9 010F C4 82 21 18 C8",            // another tag around it
		"C4 82 61 41 01",                    // text exponent
		"C4 82 22 3B 7FFFFFFFFFFFFFFF",      // [-3, -2^63]
		"C4 82 20 1B 0CCCCCCCCCCCCCCD",      // [-1, MaxInt64/10+1]
		"C4 82 20 3B 0CCCCCCCCCCCCCCD",      // [-1, -(MaxInt64/10+2)]
		"C4 82 00 1B 0147AE147AE147AF",      // [0, MaxInt64/100+1]
	}
	for _, in := range bad {
		var d Decimal
		if err := d.UnmarshalCBOR(h(t, in)); !errors.Is(err, ErrBadDecimal) {
			t.Errorf("UnmarshalCBOR(%s) = %d, %v; want ErrBadDecimal", in, d, err)
		}
	}
}

func TestDecimalJSON(t *testing.T) {
	b, err := json.Marshal(Decimal(150))
	if err != nil || string(b) != `"1.50"` {
		t.Errorf("json.Marshal(150) = %s, %v", b, err)
	}
	for in, want := range map[string]Decimal{`"2.00"`: 200, `2`: 200, `1.5`: 150, `"-0.05"`: -5} {
		var d Decimal
		if err := json.Unmarshal([]byte(in), &d); err != nil || d != want {
			t.Errorf("json.Unmarshal(%s) = %d, %v; want %d", in, d, err, want)
		}
	}
	for _, in := range []string{`"1.234"`, `"x"`, `true`, `null`} {
		var d Decimal
		if err := json.Unmarshal([]byte(in), &d); err == nil {
			t.Errorf("json.Unmarshal(%s) = %d, want an error", in, d)
		}
	}
}

func TestU64JSON(t *testing.T) {
	b, err := json.Marshal(U64(math.MaxUint64))
	if err != nil || string(b) != `"18446744073709551615"` {
		t.Errorf("json.Marshal = %s, %v", b, err)
	}
	for in, want := range map[string]U64{`"1507818434"`: 1507818434, `43344`: 43344, `"0"`: 0} {
		var u U64
		if err := json.Unmarshal([]byte(in), &u); err != nil || u != want {
			t.Errorf("json.Unmarshal(%s) = %d, %v; want %d", in, u, err, want)
		}
	}
	for _, in := range []string{`"-1"`, `"x"`, `1.5`, `"18446744073709551616"`} {
		var u U64
		if err := json.Unmarshal([]byte(in), &u); err == nil {
			t.Errorf("json.Unmarshal(%s) = %d, want an error", in, u)
		}
	}
}
