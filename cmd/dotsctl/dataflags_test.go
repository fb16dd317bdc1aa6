package main

import (
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/levee-dots/levee/dots/data"
)

// rfcExample is an RFC 8783 example body kept by the data-channel model.
func rfcExample(t *testing.T, name string) string {
	t.Helper()
	return filepath.Join("..", "..", "dots", "data", "testdata", name)
}

func readJSONValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return v
}

func sameJSONValue(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if g, w := readJSONValue(t, got), readJSONValue(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}

func aclFromArgs(args ...string) (*data.ACLs, error) {
	fs := flag.NewFlagSet("acl create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f aclFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return f.acls(fs)
}

func aliasFromArgs(args ...string) (*data.Aliases, error) {
	fs := flag.NewFlagSet("alias create", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f aliasFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return f.aliases()
}

// TestACLFlagsMakeRFCExamples: the flags of acl create give the bodies of
// RFC 8783's examples.
func TestACLFlagsMakeRFCExamples(t *testing.T) {
	for _, tc := range []struct {
		file string
		args []string
		// drop removes members of the example the flags do not set.
		drop func(acl map[string]any)
	}{
		{file: "acl-sample-ipv4.json", args: []string{"--name", "sample-ipv4-acl", "--dst", "198.51.100.0/24", "--src", "192.0.2.0/24",
			"--activation", "activate-when-mitigating"}},
		{file: "acl-ipv6-udp.json", args: []string{"--name", "test-acl-ipv6-udp", "--ace", "my-test-ace", "--dst", "2001:db8:6401::2/127",
			"--src", "2001:db8:1234::/96", "--protocol", "udp", "--src-port", "<=80", "--dst-port", "!=1010", "--action", "accept",
			"--activation", "activate-when-mitigating"},
			drop: func(acl map[string]any) { delete(ipv6Of(acl), "flow-label") }},
		{file: "acl-syn-rate-limit.json", args: []string{"--name", "tcp-flags-example", "--ace", "rate-limit-syn", "--tcp-flags", "match syn",
			"--action", "rate-limit=20.00", "--activation", "activate-when-mitigating"}},
		{file: "acl-tcp-flags.json", args: []string{"--name", "tcp-flags-example", "--ace", "null-attack", "--tcp-flags", "not any 4095"}},
		{file: "acl-fragment-ipv4.json", args: []string{"--name", "dns-fragments", "--ace", "drop-all-fragments", "--fragment", "match isf", "--family", "ipv4"}},
		{file: "acl-fragment-ipv6.json", args: []string{"--name", "dns-fragments", "--ace", "drop-all-fragments", "--fragment", "match isf", "--family", "ipv6"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			a, err := aclFromArgs(tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := data.EncodeACLs(a)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(rfcExample(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if tc.drop != nil {
				var w map[string]any
				if err := json.Unmarshal(want, &w); err != nil {
					t.Fatal(err)
				}
				tc.drop(w["ietf-dots-data-channel:acls"].(map[string]any)["acl"].([]any)[0].(map[string]any))
				want, _ = json.Marshal(w)
			}
			sameJSONValue(t, "acl create "+tc.file, got, want)
			// What the flags make, the server's decoder takes.
			if _, err := data.DecodeACLs(got, data.Request); err != nil {
				t.Errorf("the body of the flags does not decode: %v", err)
			}
		})
	}
}

func ipv6Of(acl map[string]any) map[string]any {
	ace := acl["aces"].(map[string]any)["ace"].([]any)[0].(map[string]any)
	return ace["matches"].(map[string]any)["ipv6"].(map[string]any)
}

func TestAliasFlagsMakeRFCExample(t *testing.T) {
	a, err := aliasFromArgs("--name", "https1", "--protocol", "tcp", "--target", "2001:db8:6401::1/128",
		"--target", "2001:db8:6401::2", "--port", "443")
	if err != nil {
		t.Fatal(err)
	}
	got, err := data.EncodeAliases(a)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(rfcExample(t, "alias-https1.json"))
	if err != nil {
		t.Fatal(err)
	}
	sameJSONValue(t, "alias create https1", got, want)
}

func TestDataFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		alias bool
		args  []string
		want  string
	}{
		{args: []string{"--src", "192.0.2.0/24"}, want: "--name is required"},
		{args: []string{"--name", "a", "--src", "192.0.2.0/24", "--dst", "2001:db8::/32"}, want: "different address families"},
		{args: []string{"--name", "a", "--src", "192.0.2.0/33"}, want: `--src "192.0.2.0/33": want a prefix`},
		{args: []string{"--name", "a", "--dst-port", "80"}, want: "need --protocol tcp or udp"},
		{args: []string{"--name", "a", "--protocol", "udp", "--tcp-flags", "syn"}, want: "does not go with --protocol udp"},
		{args: []string{"--name", "a", "--protocol", "tcp", "--dst-port", "99-80"}, want: "LOW <= HIGH"},
		{args: []string{"--name", "a", "--protocol", "tcp", "--dst-port", ">80x"}, want: `--dst-port ">80x": use a port`},
		{args: []string{"--name", "a", "--tcp-flags", "syn,bogus"}, want: `"bogus" is not a TCP flag`},
		{args: []string{"--name", "a", "--tcp-flags", "4096"}, want: "0 to 4095"},
		{args: []string{"--name", "a", "--tcp-flags", "match any syn"}, want: "match and any do not go together"},
		{args: []string{"--name", "a", "--tcp-flags", "often syn"}, want: `"often" is not an operator`},
		{args: []string{"--name", "a", "--fragment", "isf,xx"}, want: `"xx" is not a fragment type`},
		{args: []string{"--name", "a", "--action", "reject"}, want: "use drop, accept or rate-limit=BYTES/S"},
		{args: []string{"--name", "a", "--action", "rate-limit=fast"}, want: "bytes per second"},
		{args: []string{"--name", "a", "--activation", "always"}, want: `activation-type "always"`},
		{args: []string{"--name", "a", "--family", "ipv5"}, want: `--family "ipv5"`},
		{args: []string{"--name", "a", "--src", "2001:db8::/32", "--family", "ipv4"}, want: "does not fit the prefixes"},
		{args: []string{"--name", "a", "--file", "x.json"}, want: "not both (drop --name)"},
		{alias: true, args: []string{"--target", "203.0.113.0/28"}, want: "--name is required"},
		{alias: true, args: []string{"--name", "web", "--port", "443"}, want: "at least one --target, --fqdn or --uri"},
		{alias: true, args: []string{"--name", "web", "--target", "203.0.113.0/28", "--protocol", "tcpx"}, want: `--protocol "tcpx"`},
		{alias: true, args: []string{"--name", "web", "--file", "x.json"}, want: "in the file or with flags, not both"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			var err error
			if tc.alias {
				_, err = aliasFromArgs(tc.args...)
			} else {
				_, err = aclFromArgs(tc.args...)
			}
			if err == nil {
				t.Fatalf("%v: no error, want %q", tc.args, tc.want)
			}
			contains(t, "error", err.Error(), tc.want)
		})
	}
}

// TestDataFilesRFCExamples: RFC 8783's example bodies work as --file as
// they are, in JSON and in YAML.
func TestDataFilesRFCExamples(t *testing.T) {
	for _, name := range []string{"acl-sample-ipv4.json", "acl-ipv6-udp.json", "acl-syn-rate-limit.json",
		"acl-tcp-flags.json", "acl-fragment-ipv4.json", "acl-fragment-ipv6.json"} {
		t.Run(name, func(t *testing.T) {
			a, err := aclFromArgs("--file", rfcExample(t, name))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := data.EncodeACLs(a)
			want, _ := os.ReadFile(rfcExample(t, name))
			sameJSONValue(t, "--file "+name, got, want)
		})
	}
	a, err := aliasFromArgs("--file", rfcExample(t, "alias-https1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Alias) != 1 || a.Alias[0].Name != "https1" || len(a.Alias[0].TargetPrefix) != 2 {
		t.Errorf("--file alias-https1.json: %+v", a)
	}

	// The SYN rate-limit example as YAML: 20.00 stays the decimal64 "20.00",
	// 2 stays a number.
	dir := t.TempDir()
	yml := filepath.Join(dir, "syn.yaml")
	if err := os.WriteFile(yml, []byte(`ietf-dots-data-channel:acls:
  acl:
    - name: tcp-flags-example
      activation-type: activate-when-mitigating
      aces:
        ace:
          - name: rate-limit-syn
            matches:
              tcp:
                flags-bitmask: {operator: match, bitmask: 2}
            actions:
              forwarding: accept
              rate-limit: 20.00
`), 0o600); err != nil {
		t.Fatal(err)
	}
	a2, err := aclFromArgs("--file", yml)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := data.EncodeACLs(a2)
	want, _ := os.ReadFile(rfcExample(t, "acl-syn-rate-limit.json"))
	sameJSONValue(t, "--file syn.yaml", got, want)

	for _, tc := range []struct{ body, want string }{
		{`{"ietf-dots-data-channel:acls": {"acl": [`, "not valid JSON"},
		{"acls: [a, b", "neither JSON nor YAML"},
		{"", "is empty"},
		{`{"ietf-dots-data-channel:acls": {"acl": [{"name": "x", "bogus": 1}]}}`, "bogus"},
	} {
		p := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := aclFromArgs("--file", p)
		if err == nil {
			t.Errorf("--file with %q: no error, want %q", tc.body, tc.want)
			continue
		}
		contains(t, "--file error", err.Error(), "--file", tc.want)
	}
}
