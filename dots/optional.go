package dots

import (
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// messageType is the Go type Decode fills.
var messageType = reflect.TypeOf(Message{})

// dropForeignOptional returns data without the comprehension-optional keys
// (RFC 9132 §6, §10.6.1.1: 128–255 and 16384 upwards) whose values do not
// decode into the field Levee reads them into, at every level of type t,
// and whether it dropped any. Such a key is one Levee does not understand:
// another implementation uses it (a private-use key above all) for
// something else, and RFC 9132 §4.4.1 lets a DOTS agent ignore it.
// Comprehension-required keys are left alone, so their type errors are
// still reported. The values kept are copied byte for byte.
//
// Decode calls it only after the struct decode failed, so a body without
// such a key costs nothing more; each level is decoded once more at most.
func dropForeignOptional(data []byte, t reflect.Type) ([]byte, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		var items []cbor.RawMessage
		if decMode.Unmarshal(data, &items) != nil {
			return data, false
		}
		dropped := false
		for i, item := range items {
			if out, ok := dropForeignOptional(item, t.Elem()); ok {
				items[i], dropped = out, true
			}
		}
		return reencode(data, items, dropped)
	case t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(unmarshalerType):
		var entries map[uint64]cbor.RawMessage
		if decMode.Unmarshal(data, &entries) != nil {
			return data, false
		}
		fields := cborFields(t)
		dropped := false
		for key, raw := range entries {
			ft, known := fields[key]
			switch {
			case !known:
			case !ComprehensionRequired(key) && decMode.Unmarshal(raw, reflect.New(ft).Interface()) != nil:
				delete(entries, key)
				dropped = true
			default:
				if out, ok := dropForeignOptional(raw, ft); ok {
					entries[key], dropped = out, true
				}
			}
		}
		return reencode(data, entries, dropped)
	}
	return data, false
}

// reencode encodes v when something was dropped from it.
func reencode(data []byte, v any, dropped bool) ([]byte, bool) {
	if !dropped {
		return data, false
	}
	out, err := encMode.Marshal(v)
	if err != nil {
		return data, false
	}
	return out, true
}
