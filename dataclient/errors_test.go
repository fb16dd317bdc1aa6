package dataclient

import (
	"net/http"
	"testing"
)

func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
		tag    string
	}{
		{name: "full entry", status: http.StatusConflict,
			body: `{"ietf-restconf:errors":{"error":[{"error-type":"application","error-tag":"resource-denied","error-app-tag":"conflict","error-path":"/ietf-dots-data-channel:dots-data/dots-client=abc/acls/acl=x","error-message":"acl x exists"}]}}`,
			want: "409 resource-denied: acl x exists (error-app-tag conflict, error-path /ietf-dots-data-channel:dots-data/dots-client=abc/acls/acl=x)",
			tag:  "resource-denied"},
		{name: "two entries, error-info", status: http.StatusBadRequest,
			body: `{"ietf-restconf:errors":{"error":[{"error-type":"protocol","error-tag":"missing-attribute","error-message":"no cuid","error-info":{"x":1}},{"error-type":"protocol","error-tag":"invalid-value"}]}}`,
			want: "400 missing-attribute: no cuid; invalid-value", tag: "missing-attribute"},
		{name: "no tag", status: http.StatusForbidden,
			body: `{"ietf-restconf:errors":{"error":[{"error-message":"not yours"}]}}`,
			want: "403 Forbidden: not yours"},
		{name: "not an errors body", status: http.StatusBadGateway, body: "upstream down\n", want: "502 Bad Gateway: upstream down"},
		{name: "empty body", status: http.StatusNotFound, body: "", want: "404 Not Found"},
		{name: "empty errors list", status: http.StatusNotFound, body: `{"ietf-restconf:errors":{"error":[]}}`,
			want: `404 Not Found: {"ietf-restconf:errors":{"error":[]}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := parseError(tc.status, []byte(tc.body))
			if got := e.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
			if e.Tag() != tc.tag {
				t.Errorf("Tag() = %q, want %q", e.Tag(), tc.tag)
			}
		})
	}
}

func TestKeyEscaping(t *testing.T) {
	for in, want := range map[string]string{
		"sample-ipv4-acl":        "sample-ipv4-acl",
		"dz6pHjaADkaFTbjr0JGBpw": "dz6pHjaADkaFTbjr0JGBpw",
		"a/b":                    "a%2Fb",
		"a,b c":                  "a%2Cb%20c",
		"x=y?z#":                 "x%3Dy%3Fz%23",
		"é":                      "%C3%A9",
	} {
		if got := key(in); got != want {
			t.Errorf("key(%q) = %q, want %q", in, got, want)
		}
	}
}
