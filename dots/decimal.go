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
	v := uint64(d)
	if d < 0 {
		sign, v = "-", -v // unsigned negation also handles math.MinInt64
	}
	return fmt.Sprintf("%s%d.%02d", sign, v/100, v%100)
}

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
	if m == 0 {
		// Zero with any exponent; without this the loops below would
		// spin up to 2^63 times for an extreme exponent.
		*d = 0
		return nil
	}
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

// ParseDecimal parses a decimal with at most two fraction digits, such as
// "2", "1.5", "-0.05" or "30.00" (RFC 7950 §9.3.1 lexical form).
func ParseDecimal(s string) (Decimal, error) {
	in := s
	neg := strings.HasPrefix(s, "-")
	if neg || strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 || !digits(whole) || (frac != "" && !digits(frac)) {
		return 0, fmt.Errorf("decimal %q: want digits with at most two fraction digits", in)
	}
	frac += strings.Repeat("0", 2-len(frac))
	f, _ := strconv.ParseUint(frac, 10, 64)
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // math.MinInt64 hundredths is representable
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil || w > (limit-f)/100 {
		return 0, fmt.Errorf("decimal %q: out of range", in)
	}
	u := w*100 + f
	if neg {
		u = -u
	}
	return Decimal(u), nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
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
