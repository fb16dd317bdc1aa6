package data

import (
	"errors"
	"path/filepath"
	"testing"
)

func addSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		f.Add(readFile(f, filepath.Base(file)))
	}
	f.Add([]byte(acl("ipv4-acl-type", "immediate", `"matches":{"ipv4":{"destination-ipv4-network":"198.51.100.0/24"}},`+drop)))
	f.Add([]byte(`{"ietf-dots-data-channel:capabilities":{"address-family":["ipv4"],"rate-limit":true}}`))
	f.Add([]byte(`{"ietf-restconf:errors":{"error":[{"error-type":"protocol","error-tag":"invalid-value"}]}}`))
}

// checkErr: a failure is an *Error with a status, a tag and a message.
func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var e *Error
	if !errors.As(err, &e) || e.Status == 0 || e.Tag == "" || e.Message == "" {
		t.Fatalf("error without RFC 8040 fields: %#v", err)
	}
}

// roundTrip: what decodes encodes, and the encoding decodes to the same.
func roundTrip[T any](t *testing.T, v *T, enc func(*T) ([]byte, error), dec func([]byte) (*T, error)) {
	t.Helper()
	b, err := enc(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	if _, err := dec(b); err != nil {
		t.Fatalf("re-decode of %s: %v", b, err)
	}
}

func FuzzDecodeACLs(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []Mode{Request, Response} {
			a, err := DecodeACLs(b, m)
			checkErr(t, err)
			if err == nil {
				roundTrip(t, a, EncodeACLs, func(b []byte) (*ACLs, error) { return DecodeACLs(b, m) })
			}
		}
	})
}

func FuzzDecodeAliases(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []Mode{Request, Response} {
			a, err := DecodeAliases(b, m)
			checkErr(t, err)
			if err == nil {
				roundTrip(t, a, EncodeAliases, func(b []byte) (*Aliases, error) { return DecodeAliases(b, m) })
			}
		}
	})
}

func FuzzDecodeClient(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []Mode{Request, Response} {
			c, err := DecodeClient(b, m)
			checkErr(t, err)
			if err == nil {
				roundTrip(t, c, func(c *DotsClient) ([]byte, error) { return EncodeClients([]DotsClient{*c}) },
					func(b []byte) (*DotsClient, error) { return DecodeClient(b, m) })
			}
		}
	})
}

func FuzzDecodeCapabilities(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCapabilities(b)
		checkErr(t, err)
		if err == nil {
			roundTrip(t, c, EncodeCapabilities, DecodeCapabilities)
		}
	})
}

func FuzzDecodeDotsData(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDotsData(b)
		checkErr(t, err)
		if err == nil {
			roundTrip(t, d, EncodeDotsData, DecodeDotsData)
		}
	})
}

func FuzzDecodeErrors(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := DecodeErrors(b)
		checkErr(t, err)
	})
}
