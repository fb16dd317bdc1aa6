package dots

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// addGoldenSeeds adds every testdata/golden/*.hex body to the corpus, plus
// a few hand-made edge cases.
func addGoldenSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.hex"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden vectors: %v", err)
	}
	for _, file := range files {
		b := readHex(f, file)
		f.Add(b)
		f.Add(append([]byte{0xd9, 0x01, 0x0f}, b...))
	}
	for _, s := range []string{
		"A0",
		"A1 01 C6 A1 02 81 A1 18 3C 01", // tag around a map
		"A2 01 A1 02 81 A1 0E 19 0E10 18 C8 A1 18 3C 01",                   // optional key with content
		"A1 18 1E A1 18 20 A1 18 27 A1 18 2B C4 82 3B 7FFFFFFFFFFFFFFF 00", // extreme exponent
		"A1 18 1E A1 18 20 A1 18 28 A1 18 2B C4 82 20 0F",                  // exponent -1
		"BF 01 BF 02 9F A1 0E 20 FF FF FF",                                 // indefinite lengths
		"A1 01 A1 02 81 A1 07 81 A1 08 1A 00010000",                        // port overflow
		"A1 01 A1 02 81 A3 0E 19 0E10 19 C000 01 19 C001 A0",               // Levee's optional keys, foreign values
	} {
		f.Add(h(f, s))
	}
}

// checkDecodeError checks the error contract of Decode.
func checkDecodeError(t *testing.T, err error) {
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("Decode error %T is not *Error: %v", err, err)
	}
	if pe.Code != BadRequest || pe.Diag == "" {
		t.Fatalf("Decode error: code %v diag %q", pe.Code, pe.Diag)
	}
}

// FuzzDecode checks that Decode never panics and that what it accepts
// survives a round trip: Encode succeeds, the encoding decodes again and
// re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	addGoldenSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		first, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode of a decoded message: %v\n%+v", err, m)
		}
		m2, err := Decode(first)
		if err != nil {
			t.Fatalf("Decode of our own encoding %X: %v", first, err)
		}
		second, err := Encode(m2)
		if err != nil {
			t.Fatalf("second Encode: %v", err)
		}
		if !bytes.Equal(first, second) {
			t.Fatalf("round trip is not idempotent:\n first %X\nsecond %X", first, second)
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("json.Marshal: %v", err)
		}
	})
}

// FuzzParseMitigationRequest checks that validation never panics on any
// decodable body and that its errors are 4.00 *Error values.
func FuzzParseMitigationRequest(f *testing.F) {
	addGoldenSeeds(f)
	for _, s := range []string{
		"A1 01 A1 02 81 A2 06 81 6E 3132372E302E302E312F3332 0E 20",  // 127.0.0.1/32, lifetime -1
		"A1 01 A1 02 81 A2 06 81 69 302E302E302E302F30 0E 01",        // 0.0.0.0/0
		"A1 01 A1 02 81 A2 0C 81 6A 68747470733A2F2F2F 0E 01",        // https:///
		"A1 01 A1 02 81 A2 07 81 A2 08 19 01BB 09 18 50 0D 81 61 61", // upper < lower
		"A1 01 A1 02 81 A2 0B 81 6B 2D6261642D2E6578616D 0E 19 0E10", // bad fqdn
		"A1 01 A1 02 82 A1 0D 81 61 61 A1 0D 81 61 62",               // two scopes
		"A1 01 A1 02 81 A3 0A 81 19 0100 0D 81 61 61 0E 19 0E10",     // protocol 256
		"A1 01 A1 02 81 A3 05 01 0D 81 61 61 0E 19 0E10",             // mid in body
	} {
		f.Add(h(f, s))
	}
	// At and one past the attribute bounds.
	for _, mod := range []func(*Scope){
		func(s *Scope) { s.TargetFQDN = []string{fqdnOfLen(253)} },
		func(s *Scope) { s.TargetFQDN = []string{fqdnOfLen(254)} },
		func(s *Scope) { s.TargetURI = []string{"https://h.example/" + strings.Repeat("p", 2030)} },
		func(s *Scope) { s.TargetPrefix = prefixes(257) },
		func(s *Scope) { s.AliasName = repeat("alias", 65) },
		func(s *Scope) { s.Countermeasure = strings.Repeat("c", 65) },
		func(s *Scope) { s.ACLList = []ACLControl{{ACLName: strings.Repeat("n", 256)}} },
	} {
		f.Add(MustEncode(req(mod)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		r, err := ParseMitigationRequest(m)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != BadRequest || pe.Diag == "" {
				t.Fatalf("ParseMitigationRequest error is not a 4.00 *Error: %#v", err)
			}
			return
		}
		if r.Lifetime == 0 && r.Scope.AttackStatus == nil || r.Lifetime < -1 {
			t.Fatalf("accepted lifetime %d", r.Lifetime)
		}
		if err := checkBounds(&r.Scope); err != nil {
			t.Fatalf("accepted a scope over a bound: %v", err)
		}
		if len(r.Prefixes) != len(r.Scope.TargetPrefix) {
			t.Fatalf("%d prefixes for %d target-prefix values", len(r.Prefixes), len(r.Scope.TargetPrefix))
		}
		for _, p := range r.Prefixes {
			if !p.IsValid() || p != p.Masked() || p.Addr().IsLoopback() || p.Addr().IsMulticast() {
				t.Fatalf("accepted prefix %v", p)
			}
		}
	})
}
