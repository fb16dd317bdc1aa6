package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/levee-dots/levee/dots"
)

// Bounds on what a decoder accepts. Strings not listed are bounded by
// MaxStringLen.
const (
	MaxNameLen   = 64   // alias, ACL and ACE names (RFC 8519: 1..64)
	MaxCUIDLen   = 64   // cuid (22 characters when derived, RFC 9132 §4.4.1)
	MaxCDIDLen   = 255  // cdid
	MaxFQDNLen   = 253  // target-fqdn (RFC 1035)
	MaxURILen    = 2048 // target-uri
	MaxBinaryLen = 1024 // base64 of tcp options, icmp rest-of-header
	MaxStringLen = 255  // any other string
	MaxClients   = 1024 // dots-client entries in one body
	MaxAliases   = 256  // aliases in one body
	MaxACLs      = 256  // ACLs in one body
	MaxACEs      = 64   // ACEs in one ACL
	MaxTargets   = 64   // entries of each target list of an alias
	MaxCaps      = 16   // entries of each capabilities list
)

var limits = map[string]int{
	"name": MaxNameLen, "cuid": MaxCUIDLen, "cdid": MaxCDIDLen, "fqdn": MaxFQDNLen, "uri": MaxURILen,
	"binary": MaxBinaryLen, "clients": MaxClients, "aliases": MaxAliases, "acls": MaxACLs, "aces": MaxACEs,
	"targets": MaxTargets, "caps": MaxCaps,
}

// Mode says what a body is: a request carries configuration only (the
// read-only pending-lifetime and statistics are refused); a response may
// carry everything.
type Mode uint8

// Modes.
const (
	Request Mode = iota
	Response
)

type decoder struct{ mode Mode }

func bad(path, tag, format string, args ...any) *Error {
	e := Errorf(400, tag, format, args...)
	e.Path = path
	return e
}

// decodeTop parses one JSON object with exactly one module-qualified member
// among targets (name -> pointer) and decodes it into its target.
func decodeTop(b []byte, targets map[string]any, response bool) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return bad("", TagMalformedMessage, "empty body")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return bad("", TagMalformedMessage, "body is not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("", TagMalformedMessage, "trailing data after the JSON value")
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return bad("", TagMalformedMessage, "body is not a JSON object")
	}
	names := make([]string, 0, len(targets))
	for n := range targets {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(obj) != 1 {
		return bad("", TagMalformedMessage, "body must hold exactly one member, one of %s", strings.Join(names, ", "))
	}
	d := decoder{mode: Request}
	if response {
		d.mode = Response
	}
	for k, v := range obj {
		t, ok := targets[k]
		if !ok {
			if !strings.Contains(k, ":") {
				return bad("/"+k, TagUnknownElement, "top-level member %q is not module-qualified (RFC 7951 §4); want one of %s", k, strings.Join(names, ", "))
			}
			return bad("/"+k, TagUnknownElement, "unknown element %q; want one of %s", k, strings.Join(names, ", "))
		}
		return d.value(v, reflect.ValueOf(t).Elem(), "/"+k, "")
	}
	return nil
}

type field struct {
	index     int
	name      string
	optional  bool
	nonconfig bool
	listLim   string
	strLim    string
}

var fieldCache sync.Map // reflect.Type -> map[string]field

func fieldsOf(t reflect.Type) map[string]field {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]field)
	}
	out := map[string]field{}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "" || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		f := field{index: i, name: name, optional: strings.Contains(opts, "omitempty") || sf.Type.Kind() == reflect.Pointer}
		_, f.nonconfig = sf.Tag.Lookup("nonconfig")
		lim := strings.Split(sf.Tag.Get("lim"), ",")
		if sf.Type.Kind() == reflect.Slice {
			f.listLim = lim[0]
			if len(lim) > 1 {
				f.strLim = lim[1]
			}
		} else {
			f.strLim = lim[0]
		}
		out[name] = f
	}
	fieldCache.Store(t, out)
	return out
}

var topLimits = map[reflect.Type]string{
	reflect.TypeOf(DotsClient{}): "clients", reflect.TypeOf(Alias{}): "aliases", reflect.TypeOf(ACL{}): "acls",
}

var (
	typePrefix   = reflect.TypeOf(Prefix{})
	typeDecimal  = reflect.TypeOf(dots.Decimal(0))
	typeCounter  = reflect.TypeOf(Counter64(0))
	typeProtocol = reflect.TypeOf(Protocol(0))
)

// value decodes raw (from a UseNumber decoder) into v at path; strLim names
// the bound of a string.
func (d *decoder) value(raw any, v reflect.Value, path, strLim string) error {
	if raw == nil {
		return bad(path, TagInvalidValue, "null is not a valid value")
	}
	switch v.Type() {
	case typePrefix:
		s, err := str(raw, path, MaxStringLen)
		if err != nil {
			return err
		}
		var p Prefix
		if err := p.UnmarshalText([]byte(s)); err != nil {
			return bad(path, TagInvalidValue, "%v", err)
		}
		v.Set(reflect.ValueOf(p))
		return nil
	case typeDecimal:
		s, ok := raw.(string)
		if !ok {
			return bad(path, TagInvalidValue, "decimal64 must be a JSON string (RFC 7951 §6.1)")
		}
		x, err := dots.ParseDecimal(s)
		if err != nil {
			return bad(path, TagInvalidValue, "%v", err)
		}
		v.SetInt(int64(x))
		return nil
	case typeCounter:
		s, ok := raw.(string)
		if !ok {
			return bad(path, TagInvalidValue, "counter64 must be a JSON string (RFC 7951 §6.1)")
		}
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return bad(path, TagInvalidValue, "%q is not a uint64", s)
		}
		v.SetUint(n)
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := d.value(raw, p.Elem(), path, strLim); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		return d.object(raw, v, path)
	case reflect.Slice:
		// A top-level list ({"…:acl":[…]}): bounded by its element type.
		return d.list(raw, v, path, field{listLim: topLimits[v.Type().Elem()]})
	case reflect.String:
		lim := MaxStringLen
		if l, ok := limits[strLim]; ok {
			lim = l
		}
		s, err := str(raw, path, lim)
		if err != nil {
			return err
		}
		return d.enum(s, v, path)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		n, ok := raw.(json.Number)
		if !ok {
			return bad(path, TagInvalidValue, "want a JSON number")
		}
		u, err := strconv.ParseUint(n.String(), 10, v.Type().Bits())
		if err != nil {
			return bad(path, TagInvalidValue, "%s is not a uint%d", n, v.Type().Bits())
		}
		v.SetUint(u)
		return nil
	case reflect.Int32:
		n, ok := raw.(json.Number)
		if !ok {
			return bad(path, TagInvalidValue, "want a JSON number")
		}
		i, err := strconv.ParseInt(n.String(), 10, 32)
		if err != nil {
			return bad(path, TagInvalidValue, "%s is not an int32", n)
		}
		v.SetInt(i)
		return nil
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			return bad(path, TagInvalidValue, "want true or false")
		}
		v.SetBool(b)
		return nil
	}
	return fmt.Errorf("data: no decoder for %s at %s", v.Type(), path)
}

func str(raw any, path string, lim int) (string, error) {
	s, ok := raw.(string)
	if !ok {
		return "", bad(path, TagInvalidValue, "want a JSON string")
	}
	if len(s) > lim {
		return "", bad(path, TagInvalidValue, "string of %d octets exceeds the limit of %d", len(s), lim)
	}
	return s, nil
}

// enum parses the string types that are identities or enumerations.
func (d *decoder) enum(s string, v reflect.Value, path string) error {
	var (
		out any = s
		err error
	)
	switch v.Interface().(type) {
	case ACLType:
		out, err = parseACLType(s)
	case ActivationType:
		out, err = parseActivation(s)
	case Forwarding:
		out, err = parseForwarding(s)
	case Operator:
		out, err = parseOperator(s)
	}
	if err != nil {
		return bad(path, TagInvalidValue, "%v", err)
	}
	v.SetString(reflect.ValueOf(out).String())
	return nil
}

func (d *decoder) object(raw any, v reflect.Value, path string) error {
	obj, ok := raw.(map[string]any)
	if !ok {
		return bad(path, TagInvalidValue, "want a JSON object")
	}
	fields := fieldsOf(v.Type())
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := fields[k]
		p := path + "/" + k
		if !ok {
			return bad(p, TagUnknownElement, "unknown element %q", k)
		}
		if f.nonconfig && d.mode == Request {
			return bad(p, TagInvalidValue, "%q is read-only (config false) and cannot be written", k)
		}
		fv := v.Field(f.index)
		if fv.Kind() == reflect.Slice {
			if err := d.list(obj[k], fv, p, f); err != nil {
				return err
			}
			continue
		}
		if err := d.value(obj[k], fv, p, f.strLim); err != nil {
			return err
		}
	}
	if d.mode == Response {
		return nil // a GET answer filtered by content= may omit mandatory nodes
	}
	for _, name := range sortedFields(fields) {
		f := fields[name]
		if _, ok := obj[name]; !ok && !f.optional {
			return bad(path+"/"+name, TagMissingAttribute, "missing mandatory element %q", name)
		}
	}
	return nil
}

func sortedFields(fields map[string]field) []string {
	out := make([]string, 0, len(fields))
	for n := range fields {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return fields[out[i]].index < fields[out[j]].index })
	return out
}

func (d *decoder) list(raw any, v reflect.Value, path string, f field) error {
	arr, ok := raw.([]any)
	if !ok {
		return bad(path, TagInvalidValue, "want a JSON array")
	}
	lim, ok := limits[f.listLim]
	if !ok {
		lim = MaxTargets
	}
	if len(arr) > lim {
		return bad(path, TagInvalidValue, "%d entries exceed the limit of %d", len(arr), lim)
	}
	out := reflect.MakeSlice(v.Type(), len(arr), len(arr))
	for i, e := range arr {
		if err := d.value(e, out.Index(i), path+elemKey(e, i), f.strLim); err != nil {
			return err
		}
	}
	v.Set(out)
	return nil
}

// elemKey renders a list entry of an error path: [name='x'] for keyed
// lists, [n] (1-based) otherwise.
func elemKey(e any, i int) string {
	if m, ok := e.(map[string]any); ok {
		for _, k := range []string{"name", "cuid"} {
			if s, ok := m[k].(string); ok && len(s) <= MaxNameLen {
				return fmt.Sprintf("[%s=%s]", k, strconv.Quote(s))
			}
		}
	}
	return fmt.Sprintf("[%d]", i+1)
}
