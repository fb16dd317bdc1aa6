package data

import (
	"errors"
	"strings"
	"testing"
)

// acl wraps one ACE's JSON (matches and actions) into an acls body.
func acl(typ, activation, ace string) string {
	head := `{"name":"a1"`
	if typ != "" {
		head += `,"type":"` + typ + `"`
	}
	if activation != "" {
		head += `,"activation-type":"` + activation + `"`
	}
	return `{"ietf-dots-data-channel:acls":{"acl":[` + head + `,"aces":{"ace":[{"name":"e1",` + ace + `}]}}]}}`
}

const drop = `"actions":{"forwarding":"drop"}`

func TestDecodeErrors(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	for _, tc := range []struct {
		name, body string
		decode     func([]byte, Mode) error
		tag, path  string // path: substring of error-path
		msg        string // substring of error-message
	}{
		{"not json", `{`, acls, TagMalformedMessage, "", "not JSON"},
		{"trailing", acl("", "", drop) + `{}`, acls, TagMalformedMessage, "", "trailing"},
		{"unqualified top", `{"acls":{"acl":[]}}`, acls, TagUnknownElement, "/acls", "module-qualified"},
		{"two members", `{"ietf-dots-data-channel:acls":{},"ietf-dots-data-channel:acl":[]}`, acls, TagMalformedMessage, "", "exactly one"},
		{"unknown element", acl("", "", `"matches":{"ipv4":{"bogus":1}},`+drop), acls, TagUnknownElement, "/matches/ipv4/bogus", `"bogus"`},
		{"unknown in ace", acl("", "", `"colour":"red",`+drop), acls, TagUnknownElement, `ace[name="e1"]/colour`, `"colour"`},
		{"name too long", `{"ietf-dots-data-channel:acls":{"acl":[{"name":"` + long + `","aces":{"ace":[{"name":"e",` + drop + `}]}}]}}`, acls, TagInvalidValue, "/name", "limit"},
		{"empty name", `{"ietf-dots-data-channel:acls":{"acl":[{"name":"","aces":{"ace":[{"name":"e",` + drop + `}]}}]}}`, acls, TagInvalidValue, "/name", "1 to 64"},
		{"no aces", `{"ietf-dots-data-channel:acls":{"acl":[{"name":"a"}]}}`, acls, TagMissingAttribute, "/aces", "aces"},
		{"no forwarding", acl("", "", `"actions":{}`), acls, TagMissingAttribute, "/actions/forwarding", "forwarding"},
		{"reject refused", acl("", "", `"actions":{"forwarding":"reject"}`), acls, TagInvalidValue, "/forwarding", "reject"},
		{"qualified drop", acl("", "", `"actions":{"forwarding":"ietf-access-control-list:drop"}`), acls, "", "", ""},
		{"rate-limit with drop", acl("", "", `"actions":{"forwarding":"drop","rate-limit":"1.00"}`), acls, TagInvalidValue, "/rate-limit", "only when forwarding is accept"},
		{"rate-limit as number", acl("", "", `"actions":{"forwarding":"accept","rate-limit":1.5}`), acls, TagInvalidValue, "/rate-limit", "string"},
		{"rate-limit 3 digits", acl("", "", `"actions":{"forwarding":"accept","rate-limit":"1.005"}`), acls, TagInvalidValue, "/rate-limit", "fraction"},
		{"fragment with flags", acl("ipv4-acl-type", "", `"matches":{"ipv4":{"flags":"more","fragment":{"type":"isf"}}},`+drop), acls, TagBadElement, "/fragment", "flags"},
		{"bitmask with flags", acl("", "", `"matches":{"tcp":{"flags":"syn","flags-bitmask":{"bitmask":2}}},`+drop), acls, TagBadElement, "/flags-bitmask", "flags"},
		{"any and match", acl("", "", `"matches":{"tcp":{"flags-bitmask":{"operator":"any match","bitmask":2}}},`+drop), acls, TagInvalidValue, "/operator", "any and match"},
		{"unknown bit", acl("", "", `"matches":{"tcp":{"flags-bitmask":{"operator":"sometimes","bitmask":2}}},`+drop), acls, TagInvalidValue, "/operator", "sometimes"},
		{"df in ipv6", acl("ipv6-acl-type", "", `"matches":{"ipv6":{"fragment":{"type":"df"}}},`+drop), acls, TagInvalidValue, "/fragment/type", "df"},
		{"ipv4 in ipv6 acl", acl("ipv6-acl-type", "", `"matches":{"ipv4":{"protocol":6}},`+drop), acls, TagInvalidValue, "/matches", "acl type"},
		{"ipv6 in ipv4 acl", acl("ipv4-acl-type", "", `"matches":{"ipv6":{"protocol":6}},`+drop), acls, TagInvalidValue, "/matches", "acl type"},
		{"both l3", acl("", "", `"matches":{"ipv4":{},"ipv6":{}},`+drop), acls, TagBadElement, "/matches", "alternatives"},
		{"both l4", acl("", "", `"matches":{"tcp":{},"udp":{}},`+drop), acls, TagBadElement, "/matches", "alternatives"},
		{"v6 prefix in ipv4", acl("", "", `"matches":{"ipv4":{"destination-ipv4-network":"2001:db8::/32"}},`+drop), acls, TagInvalidValue, "destination-ipv4-network", "IPv4"},
		{"bad prefix", acl("", "", `"matches":{"ipv4":{"destination-ipv4-network":"198.51.100.0/33"}},`+drop), acls, TagInvalidValue, "destination-ipv4-network", "prefix"},
		{"eth type", acl("eth-acl-type", "", drop), acls, TagInvalidValue, "/type", "eth-acl-type"},
		{"bad activation", acl("", "sometimes", drop), acls, TagInvalidValue, "/activation-type", "sometimes"},
		{"immediate without destination", acl("", "immediate", `"matches":{"tcp":{"flags-bitmask":{"bitmask":2}}},`+drop), acls, TagMissingAttribute, "/matches", "immediate"},
		{"port range reversed", acl("", "", `"matches":{"udp":{"destination-port-range-or-operator":{"lower-port":90,"upper-port":80}}},`+drop), acls, TagInvalidValue, "/upper-port", "below"},
		{"port range and operator", acl("", "", `"matches":{"udp":{"destination-port-range-or-operator":{"lower-port":80,"upper-port":90,"port":1}}},`+drop), acls, TagBadElement, "destination-port-range-or-operator", "alternatives"},
		{"bad port operator", acl("", "", `"matches":{"udp":{"source-port-range-or-operator":{"operator":"lt","port":1}}},`+drop), acls, TagInvalidValue, "/operator", "lt"},
		{"port overflow", acl("", "", `"matches":{"udp":{"source-port-range-or-operator":{"port":65536}}},`+drop), acls, TagInvalidValue, "/port", "uint16"},
		{"port as string", acl("", "", `"matches":{"udp":{"source-port-range-or-operator":{"port":"80"}}},`+drop), acls, TagInvalidValue, "/port", "number"},
		{"dscp", acl("", "", `"matches":{"ipv4":{"dscp":64}},`+drop), acls, TagInvalidValue, "/dscp", "63"},
		{"flow label", acl("", "", `"matches":{"ipv6":{"flow-label":1048576}},`+drop), acls, TagInvalidValue, "/flow-label", "20 bits"},
		{"bitmask too wide", acl("", "", `"matches":{"tcp":{"flags-bitmask":{"bitmask":4096}}},`+drop), acls, TagInvalidValue, "/bitmask", "12 flag bits"},
		{"duplicate ace", `{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[{"name":"e",` + drop + `},{"name":"e",` + drop + `}]}}]}}`, acls, TagInvalidValue, `ace[name="e"]`, "twice"},
		{"statistics in request", acl("", "", drop+`,"statistics":{"matched-packets":"1"}`), acls, TagInvalidValue, "/statistics", "read-only"},
		{"null", acl("", "", `"matches":null,`+drop), acls, TagInvalidValue, "/matches", "null"},
		{"too many aces", `{"ietf-dots-data-channel:acls":{"acl":[{"name":"a","aces":{"ace":[` + strings.Repeat(`{"name":"e",`+drop+`},`, MaxACEs) + `{"name":"z",` + drop + `}]}}]}}`, acls, TagInvalidValue, "/aces/ace", "limit"},

		{"alias without targets", `{"ietf-dots-data-channel:aliases":{"alias":[{"name":"x","target-protocol":[6]}]}}`, aliases, TagMissingAttribute, `alias[name="x"]`, "at least one"},
		{"alias no name", `{"ietf-dots-data-channel:aliases":{"alias":[{"target-prefix":["198.51.100.0/24"]}]}}`, aliases, TagMissingAttribute, "/name", "name"},
		{"alias port range", `{"ietf-dots-data-channel:aliases":{"alias":[{"name":"x","target-prefix":["198.51.100.0/24"],"target-port-range":[{"lower-port":9,"upper-port":8}]}]}}`, aliases, TagInvalidValue, "target-port-range", "below"},
		{"alias protocol 256", `{"ietf-dots-data-channel:aliases":{"alias":[{"name":"x","target-prefix":["198.51.100.0/24"],"target-protocol":[256]}]}}`, aliases, TagInvalidValue, "target-protocol", "uint8"},
		{"alias bad fqdn", `{"ietf-dots-data-channel:aliases":{"alias":[{"name":"x","target-fqdn":["a..b"]}]}}`, aliases, TagInvalidValue, "target-fqdn", "domain name"},
		{"alias bad uri", `{"ietf-dots-data-channel:aliases":{"alias":[{"name":"x","target-uri":["no-scheme"]}]}}`, aliases, TagInvalidValue, "target-uri", "absolute URI"},
		{"alias pending-lifetime", `{"ietf-dots-data-channel:aliases":{"alias":[{"name":"x","target-prefix":["198.51.100.0/24"],"pending-lifetime":5}]}}`, aliases, TagInvalidValue, "pending-lifetime", "read-only"},
		{"alias too many prefixes", `{"ietf-dots-data-channel:aliases":{"alias":[{"name":"x","target-prefix":[` + strings.Repeat(`"198.51.100.0/24",`, MaxTargets) + `"198.51.100.0/24"]}]}}`, aliases, TagInvalidValue, "target-prefix", "limit"},
		{"alias list form", `{"ietf-dots-data-channel:alias":[{"name":"x","target-fqdn":["www.example.com"]}]}`, aliases, "", "", ""},

		{"client two entries", `{"ietf-dots-data-channel:dots-client":[{"cuid":"a"},{"cuid":"b"}]}`, client, TagInvalidValue, "dots-client", "exactly one"},
		{"client no cuid", `{"ietf-dots-data-channel:dots-client":[{"cdid":"x"}]}`, client, TagMissingAttribute, "/cuid", "cuid"},
		{"client cdid", `{"ietf-dots-data-channel:dots-client":[{"cuid":"a","cdid":"gw"}]}`, client, "", "", ""},
		{"client unknown", `{"ietf-dots-data-channel:dots-client":[{"cuid":"a","nick":"x"}]}`, client, TagUnknownElement, `dots-client[cuid="a"]/nick`, "nick"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode([]byte(tc.body), Request)
			if tc.tag == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if e.Status != 400 || e.Type != TypeProtocol || e.Tag != tc.tag || !strings.Contains(e.Path, tc.path) ||
				!strings.Contains(e.Message, tc.msg) {
				t.Errorf("got %d %s/%s path %q message %q; want 400 %s path ~%q message ~%q",
					e.Status, e.Type, e.Tag, e.Path, e.Message, tc.tag, tc.path, tc.msg)
			}
		})
	}
}

func acls(b []byte, m Mode) error    { _, err := DecodeACLs(b, m); return err }
func aliases(b []byte, m Mode) error { _, err := DecodeAliases(b, m); return err }
func client(b []byte, m Mode) error  { _, err := DecodeClient(b, m); return err }

func TestErrorBody(t *testing.T) {
	e := &Error{Status: 409, Type: TypeApplication, Tag: TagResourceDenied, Path: "/x", Message: "exists"}
	got, err := DecodeErrors(e.Body())
	if err != nil {
		t.Fatal(err)
	}
	want := ErrorEntry{ErrorType: "application", ErrorTag: "resource-denied", ErrorPath: "/x", ErrorMessage: "exists"}
	if len(got.Errors.Error) != 1 || got.Errors.Error[0] != want {
		t.Errorf("got %+v", got)
	}
	sameJSON(t, e.Body(), []byte(`{"ietf-restconf:errors":{"error":[{"error-type":"application","error-tag":"resource-denied","error-path":"/x","error-message":"exists"}]}}`))
}
