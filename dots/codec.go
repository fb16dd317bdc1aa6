package dots

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// ContentFormat is the CoAP Content-Format of application/dots+cbor.
const ContentFormat = 271

// cborTag271 is the optional self-describing DOTS tag (RFC 9132 §6).
var cborTag271 = []byte{0xd9, 0x01, 0x0f}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.EncOptions{Sort: cbor.SortCoreDeterministic, IndefLength: cbor.IndefLengthForbidden}.EncMode()
	if err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  16,
		MaxArrayElements: 4096,
		MaxMapPairs:      512,
		DefaultMapType:   reflect.TypeOf(map[any]any{}),
		IntDec:           cbor.IntDecConvertSigned,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Encode returns the deterministic CBOR encoding of m (keys in ascending
// order, definite lengths), as in the figures of RFC 9132.
func Encode(m *Message) ([]byte, error) {
	b, err := encMode.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("dots: encode: %w", err)
	}
	return b, nil
}

// MustEncode is Encode for messages built by the program itself.
func MustEncode(m *Message) []byte {
	b, err := Encode(m)
	if err != nil {
		panic(err)
	}
	return b
}

// Decode parses one DOTS body. Unknown comprehension-required keys, type
// mismatches, duplicate keys and trailing bytes are 4.00 errors whose
// diagnostic names the offending key.
func Decode(data []byte) (*Message, error) {
	if len(data) == 0 {
		return nil, &Error{Code: BadRequest, Diag: "empty payload: a DOTS body is required", Err: ErrEmpty}
	}
	data = bytes.TrimPrefix(data, cborTag271)
	var generic any
	rest, err := decMode.UnmarshalFirst(data, &generic)
	if err != nil {
		return nil, &Error{Code: BadRequest, Diag: "malformed CBOR: " + err.Error(), Err: err}
	}
	if len(rest) != 0 {
		return nil, &Error{Code: BadRequest, Diag: fmt.Sprintf("%d bytes after the CBOR item", len(rest)), Err: ErrTrailingData}
	}
	if _, ok := generic.(map[any]any); !ok {
		return nil, &Error{Code: BadRequest, Diag: "DOTS body must be a CBOR map", Err: ErrNotMap}
	}
	if err := checkKeys(generic, ""); err != nil {
		return nil, err
	}
	var m Message
	if err := decMode.Unmarshal(data, &m); err != nil {
		return nil, &Error{Code: BadRequest, Diag: "invalid DOTS body: " + describeTypeError(err), Err: err}
	}
	return &m, nil
}

// checkKeys walks a generic decode and enforces RFC 9132 §6: map keys are
// unsigned integers and unknown comprehension-required keys are errors.
func checkKeys(v any, path string) error {
	switch t := v.(type) {
	case map[any]any:
		for k, sub := range t {
			key, ok := asKey(k)
			if !ok {
				return &Error{Code: BadRequest, Diag: fmt.Sprintf("map key %v%s is not an unsigned integer", k, at(path)), Err: ErrBadMapKeyType}
			}
			_, known := KeyNames[key]
			if !known && ComprehensionRequired(key) {
				return &Error{Code: BadRequest, Diag: fmt.Sprintf("unknown comprehension-required key %d%s", key, at(path)), Err: ErrUnknownKey}
			}
			if !known {
				continue
			}
			if err := checkKeys(sub, join(path, KeyName(key))); err != nil {
				return err
			}
		}
	case []any:
		for _, sub := range t {
			if err := checkKeys(sub, path); err != nil {
				return err
			}
		}
	}
	return nil
}

func asKey(k any) (uint64, bool) {
	switch n := k.(type) {
	case uint64:
		return n, true
	case int64:
		if n >= 0 {
			return uint64(n), true
		}
	}
	return 0, false
}

func at(path string) string {
	if path == "" {
		return ""
	}
	return " in " + path
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "/" + name
}

// describeTypeError turns fxamacker's Go-type wording into DOTS names.
func describeTypeError(err error) string {
	var ute *cbor.UnmarshalTypeError
	if errors.As(err, &ute) {
		if ute.StructFieldName != "" {
			return fmt.Sprintf("%s has the wrong type (CBOR %s)", fieldKeyName(ute.StructFieldName), ute.CBORType)
		}
		return fmt.Sprintf("value of the wrong type (CBOR %s)", ute.CBORType)
	}
	return err.Error()
}

// fieldKeyName maps a Go field path such as "Scope.Lifetime" to the JSON
// name of its last element by looking it up in the json tags.
func fieldKeyName(goPath string) string {
	name := goPath
	if i := bytes.LastIndexByte([]byte(goPath), '.'); i >= 0 {
		name = goPath[i+1:]
	}
	if n, ok := jsonNames[name]; ok {
		return n
	}
	return name
}

var jsonNames = func() map[string]string {
	out := map[string]string{}
	for _, t := range []reflect.Type{reflect.TypeOf(Message{}), reflect.TypeOf(MitigationScope{}),
		reflect.TypeOf(Scope{}), reflect.TypeOf(PortRange{}), reflect.TypeOf(ACLControl{}),
		reflect.TypeOf(ConflictInformation{}), reflect.TypeOf(ConflictScope{}), reflect.TypeOf(SignalConfig{}),
		reflect.TypeOf(ConfigSet{}), reflect.TypeOf(Uint16Param{}), reflect.TypeOf(DecimalParam{}),
		reflect.TypeOf(Heartbeat{}), reflect.TypeOf(RedirectedSignal{})} {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := bytes.Cut([]byte(f.Tag.Get("json")), []byte(","))
			out[f.Name] = string(tag)
		}
	}
	return out
}()
