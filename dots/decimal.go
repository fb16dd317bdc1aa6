package dots

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// Decimal is a YANG decimal64 with fraction-digits 2, held in hundredths
// ("2.00" is 200). On the wire it is CBOR tag 4 [-2, mantissa] (RFC 9132 §6).
type Decimal int64

// String renders the value with two fraction digits.
func (d Decimal) String() string {
	sign := ""
	v := int64(d)
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

// Float returns the value as a float64.
func (d Decimal) Float() float64 { return float64(d) / 100 }

// MarshalCBOR encodes tag 4 [-2, mantissa].
func (d Decimal) MarshalCBOR() ([]byte, error) {
	return cbor.Marshal(cbor.Tag{Number: 4, Content: []int64{-2, int64(d)}})
}

// UnmarshalCBOR accepts tag 4 [exponent, mantissa] with any integer exponent
// and normalises it to hundredths; more than two fraction digits are refused.
func (d *Decimal) UnmarshalCBOR(data []byte) error {
	var raw cbor.RawTag
	if err := raw.UnmarshalCBOR(data); err != nil || raw.Number != 4 {
		return ErrBadDecimal
	}
	var parts []int64
	if err := cbor.Unmarshal(raw.Content, &parts); err != nil || len(parts) != 2 {
		return ErrBadDecimal
	}
	exp, m := parts[0], parts[1]
	for exp < -2 {
		if m%10 != 0 {
			return fmt.Errorf("%w: more than two fraction digits", ErrBadDecimal)
		}
		m /= 10
		exp++
	}
	for exp > -2 {
		if m > math.MaxInt64/10 || m < math.MinInt64/10 {
			return fmt.Errorf("%w: value out of range", ErrBadDecimal)
		}
		m *= 10
		exp--
	}
	*d = Decimal(m)
	return nil
}

// MarshalJSON renders the RFC 7951 string form, e.g. "2.00".
func (d Decimal) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON parses "2.00" or 2.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := ParseDecimal(s)
	*d = v
	return err
}

// ParseDecimal parses a decimal with at most two fraction digits.
func ParseDecimal(s string) (Decimal, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 || whole == "" {
		return 0, fmt.Errorf("decimal %q: want at most two fraction digits", s)
	}
	frac += strings.Repeat("0", 2-len(frac))
	w, err := strconv.ParseInt(whole, 10, 62)
	if err != nil {
		return 0, fmt.Errorf("decimal %q: %w", s, err)
	}
	f, err := strconv.ParseInt(frac, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("decimal %q: %w", s, err)
	}
	v := Decimal(w*100 + f)
	if neg {
		v = -v
	}
	return v, nil
}

// U64 is a uint64 that RFC 7951 renders as a JSON string
// (mitigation-start, counters and gauges).
type U64 uint64

// MarshalJSON renders the value as a decimal string.
func (u U64) MarshalJSON() ([]byte, error) { return json.Marshal(strconv.FormatUint(uint64(u), 10)) }

// UnmarshalJSON accepts a string or a number.
func (u *U64) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseUint(strings.Trim(string(b), `"`), 10, 64)
	*u = U64(v)
	return err
}
