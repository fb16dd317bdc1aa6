package dots

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// body is a generic DOTS body: maps with integer keys, arrays and leaves.
type body = map[uint64]any

// optionalLevels are bodies Levee accepts, each with the path (map keys
// and array indexes) of a map inside it where a key can be added.
var optionalLevels = []struct {
	name string
	base func() body
	path []int
}{
	{"top level", scopeBody, nil},
	{"mitigation-scope", scopeBody, []int{1}},
	{"scope entry", scopeBody, []int{1, 2, 0}},
	{"target-port-range entry", scopeBody, []int{1, 2, 0, 7, 0}},
	{"conflict-information", scopeBody, []int{1, 2, 0, 17}},
	{"conflict-scope", scopeBody, []int{1, 2, 0, 17, 21}},
	{"acl-list entry", scopeBody, []int{1, 2, 0, 53, 0}},
	{"signal-config", configBody, []int{30}},
	{"mitigating-config", configBody, []int{30, 32}},
	{"heartbeat-interval", configBody, []int{30, 32, 33}},
	{"ack-timeout", configBody, []int{30, 32, 39}},
	{"heartbeat", func() body { return body{49: body{51: true}} }, []int{49}},
	{"redirected-signal", func() body { return body{46: body{47: "alt.example.com"}} }, []int{46}},
}

func scopeBody() body {
	return body{1: body{2: []any{body{
		6:  []any{"203.0.113.1/32"},
		7:  []any{body{8: uint64(443)}},
		14: uint64(3600),
		17: body{18: uint64(1), 21: body{5: uint64(7)}},
		53: []any{body{23: "an-accept-list"}},
	}}}}
}

func configBody() body {
	return body{30: body{31: uint64(1), 32: body{
		33: body{36: uint64(30)},
		39: body{43: Decimal(200)},
	}}}
}

// mapAt returns the map at path inside b.
func mapAt(t *testing.T, b body, path []int) body {
	t.Helper()
	var v any = b
	for _, p := range path {
		switch c := v.(type) {
		case body:
			v = c[uint64(p)]
		case []any:
			v = c[p]
		}
	}
	m, ok := v.(body)
	if !ok {
		t.Fatalf("path %v is %T, not a map", path, v)
	}
	return m
}

func encodeBody(t *testing.T, b body) []byte {
	t.Helper()
	out, err := encMode.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDecodeIgnoresForeignOptionalKeys: RFC 9132 §6 makes keys 128–255 and
// 16384–65535 comprehension-optional, so a value Levee cannot read in one of
// them (its own private-use keys 49152 and 49153 included, sent by another
// implementation with another meaning) is ignored, at every level; the body
// decodes as it does without the key.
func TestDecodeIgnoresForeignOptionalKeys(t *testing.T) {
	values := []struct {
		name string
		v    any
	}{
		{"integer", uint64(7)},
		{"negative integer", int64(-1)},
		{"map", body{1: uint64(2)}},
		{"array", []any{uint64(1), "x"}},
		{"bool", true},
		{"byte string", []byte{0, 1}},
		{"float", 1.5},
	}
	for _, lvl := range optionalLevels {
		want, err := Decode(encodeBody(t, lvl.base()))
		if err != nil {
			t.Fatalf("%s: base body: %v", lvl.name, err)
		}
		for _, key := range []uint64{49152, 49153, 32768, 128} {
			for _, val := range values {
				t.Run(lvl.name+"/key "+uitoa(key)+"/"+val.name, func(t *testing.T) {
					b := lvl.base()
					mapAt(t, b, lvl.path)[key] = val.v
					got, err := Decode(encodeBody(t, b))
					if err != nil {
						t.Fatalf("Decode: %v", err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("decoded %s\nwant    %s", describe(got), describe(want))
					}
				})
			}
		}
	}
}

func describe(m *Message) string {
	b, err := Encode(m)
	if err != nil {
		return err.Error()
	}
	return strings.ToUpper(hex.EncodeToString(b))
}

// TestDecodeOptionalKeysOfTheRightType: Levee's own optional keys are
// still read when they hold what Levee expects, next to a foreign one.
func TestDecodeOptionalKeysOfTheRightType(t *testing.T) {
	tests := []struct {
		name           string
		extra          body
		note, counterm string
	}{
		{"note read, countermeasure foreign", body{49152: "a remark", 49153: uint64(3)}, "a remark", ""},
		{"countermeasure read, note foreign", body{49152: body{}, 49153: "rtbh"}, "", "rtbh"},
		{"both read", body{49152: "a remark", 49153: "flowspec"}, "a remark", "flowspec"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := scopeBody()
			for k, v := range tc.extra {
				mapAt(t, b, []int{1, 2, 0})[k] = v
			}
			m, err := Decode(encodeBody(t, b))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			sc := m.MitigationScope.Scope[0]
			if sc.Note != tc.note || sc.Countermeasure != tc.counterm {
				t.Fatalf("note %q countermeasure %q, want %q and %q", sc.Note, sc.Countermeasure, tc.note, tc.counterm)
			}
			if sc.Lifetime == nil || *sc.Lifetime != 3600 || len(sc.TargetPrefix) != 1 {
				t.Fatalf("the rest of the scope was lost: %+v", sc)
			}
		})
	}
}

// TestDecodeRequiredKeyOfTheWrongType: a comprehension-required key of the
// wrong type stays a 4.00 naming the attribute, with or without foreign
// optional keys beside it.
func TestDecodeRequiredKeyOfTheWrongType(t *testing.T) {
	tests := []struct {
		name  string
		path  []int
		base  func() body
		key   uint64
		value any
		diag  string
	}{
		{"lifetime is text", []int{1, 2, 0}, scopeBody, 14, "abc", "scope/lifetime has the wrong type"},
		{"target-prefix holds an integer", []int{1, 2, 0}, scopeBody, 6, []any{uint64(1)}, "scope/target-prefix has the wrong type"},
		{"lower-port is text", []int{1, 2, 0, 7, 0}, scopeBody, 8, "443", "target-port-range/lower-port has the wrong type"},
		{"conflict-status is a map", []int{1, 2, 0, 17}, scopeBody, 18, body{}, "conflict-information/conflict-status"},
		{"acl-name is an integer", []int{1, 2, 0, 53, 0}, scopeBody, 23, uint64(1), "acl-list/acl-name has the wrong type"},
		{"sid is text", []int{30}, configBody, 31, "1", "signal-config/sid has the wrong type"},
		{"current-value is a bool", []int{30, 32, 33}, configBody, 36, true, "heartbeat-interval/current-value has the wrong type"},
		{"peer-hb-status is an integer", []int{49}, func() body { return body{49: body{51: true}} }, 51, uint64(1), "heartbeat/peer-hb-status has the wrong type"},
	}
	for _, tc := range tests {
		for _, foreign := range []bool{false, true} {
			name := tc.name
			if foreign {
				name += ", beside foreign optional keys"
			}
			t.Run(name, func(t *testing.T) {
				b := tc.base()
				m := mapAt(t, b, tc.path)
				m[tc.key] = tc.value
				if foreign {
					m[49152] = uint64(1)
					m[49153] = []any{}
					b[49152] = body{}
				}
				_, err := Decode(encodeBody(t, b))
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != BadRequest {
					t.Fatalf("Decode error %v, want a 4.00 *Error", err)
				}
				if !strings.Contains(pe.Diag, tc.diag) {
					t.Fatalf("diagnostic %q does not contain %q", pe.Diag, tc.diag)
				}
			})
		}
	}
}
