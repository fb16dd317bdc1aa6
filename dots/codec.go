package dots

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"

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
// diagnostic names the offending key. A comprehension-optional key is
// ignored when Levee does not know it, or knows it but cannot read its
// value (dropForeignOptional).
func Decode(data []byte) (*Message, error) {
	if len(data) == 0 {
		return nil, &Error{Code: BadRequest, Diag: "empty payload: a DOTS body is required", Err: ErrEmpty}
	}
	data = bytes.TrimPrefix(data, cborTag271)
	var generic any
	rest, err := decMode.UnmarshalFirst(data, &generic)
	if err != nil {
		return nil, &Error{Code: BadRequest, Diag: "malformed CBOR: " + cborProblem(err), Err: err}
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
	err = decMode.Unmarshal(data, &m)
	if err != nil {
		if kept, ok := dropForeignOptional(data, messageType); ok {
			m = Message{}
			err = decMode.Unmarshal(kept, &m)
		}
	}
	if err != nil {
		return nil, &Error{Code: BadRequest, Diag: "invalid DOTS body: " + describeTypeError(err, generic), Err: err}
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
			if key == 3 || key == 4 {
				// RFC 9132 §4.4.1: cuid and cdid travel in the Uri-Path only.
				return &Error{Code: BadRequest, Diag: fmt.Sprintf("%s must not appear in a body%s: it belongs in the Uri-Path", KeyName(key), at(path)), Err: ErrUnknownKey}
			}
			if err := checkKeys(sub, join(path, KeyName(key))); err != nil {
				return err
			}
		}
	case cbor.Tag:
		// Struct decoding ignores tag numbers, so a tag must not hide the
		// keys of the map it wraps.
		return checkKeys(t.Content, path)
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

// describeTypeError turns fxamacker's Go-type wording into DOTS names. The
// library reports the outermost struct field of a nested type error (key 1
// for a bad lifetime), so the offending key is located by walking the
// generic decode along the Message type.
func describeTypeError(err error, generic any) string {
	path := locate(generic, reflect.TypeOf(Message{}), "")
	var ute *cbor.UnmarshalTypeError
	if errors.As(err, &ute) {
		if path == "" && ute.StructFieldName != "" {
			path = fieldKeyName(ute.StructFieldName)
		}
		if path != "" {
			return fmt.Sprintf("%s has the wrong type (CBOR %s)", path, ute.CBORType)
		}
		return fmt.Sprintf("value of the wrong type (CBOR %s)", ute.CBORType)
	}
	if path != "" {
		return fmt.Sprintf("%s: %s", path, cborProblem(err))
	}
	return cborProblem(err)
}

// cborProblem says what is wrong with the client's CBOR in our words: the
// decoder's own message stays in the server's log.
func cborProblem(err error) string {
	var (
		syn *cbor.SyntaxError
		sem *cbor.SemanticError
		lim *cbor.MaxNestedLevelError
		tag *cbor.WrongTagError
	)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "the item is truncated"
	case errors.As(err, &lim):
		return "the item is nested too deeply"
	case errors.As(err, &tag):
		return "an unexpected CBOR tag"
	case errors.As(err, &syn), errors.As(err, &sem):
		return "the item is not well-formed"
	}
	return "the item cannot be decoded as a DOTS body"
}

// fieldKeyName maps a field path such as "dots.Scope.14" (fxamacker names
// keyasint fields by their key) to the key's JSON name.
func fieldKeyName(goPath string) string {
	name := goPath
	if i := strings.LastIndexByte(goPath, '.'); i >= 0 {
		name = goPath[i+1:]
	}
	if k, err := strconv.ParseUint(name, 10, 64); err == nil {
		return KeyName(k)
	}
	return name
}

var unmarshalerType = reflect.TypeOf((*cbor.Unmarshaler)(nil)).Elem()

// locate returns the path of the first value in v (a generic decode) that
// does not decode into type t, or "" when every value does. Comprehension-
// optional keys are skipped: Decode drops those it cannot read.
func locate(v any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return ""
	}
	composite := t.Kind() == reflect.Slice || (t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(unmarshalerType))
	if tag, ok := v.(cbor.Tag); ok && composite {
		return locate(tag.Content, t, path) // tags are ignored for these types
	}
	switch {
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8:
		a, ok := v.([]any)
		if !ok {
			return or(path, "top level")
		}
		for _, e := range a {
			if p := locate(e, t.Elem(), path); p != "" {
				return p
			}
		}
		return ""
	case composite:
		m, ok := v.(map[any]any)
		if !ok {
			return or(path, "top level")
		}
		fields := cborFields(t)
		keys := make([]uint64, 0, len(m))
		for k := range m {
			if key, ok := asKey(k); ok && ComprehensionRequired(key) {
				if _, ok := fields[key]; ok {
					keys = append(keys, key)
				}
			}
		}
		slices.Sort(keys)
		for _, key := range keys {
			sub, ok := m[any(int64(key))]
			if !ok {
				sub = m[any(key)]
			}
			if p := locate(sub, fields[key], join(path, KeyName(key))); p != "" {
				return p
			}
		}
		return ""
	}
	b, err := encMode.Marshal(v)
	if err != nil {
		return or(path, "top level")
	}
	if err := decMode.Unmarshal(b, reflect.New(t).Interface()); err != nil {
		return or(path, "top level")
	}
	return ""
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// cborFields maps the keyasint keys of struct type t to the field types.
func cborFields(t reflect.Type) map[uint64]reflect.Type {
	out := map[uint64]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("cbor"), ",")
		if k, err := strconv.ParseUint(name, 10, 64); err == nil {
			out[k] = f.Type
		}
	}
	return out
}
