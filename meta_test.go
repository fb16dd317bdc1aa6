package levee

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type goPackage struct {
	ImportPath string
	Doc        string
	Deps       []string
	Name       string
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command("go", "list", "-json", "-deps=false", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestPackageDocs: every package says what it is (and, for the protocol
// packages, which RFC sections it implements).
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}

// TestLayering: imports only point downward — the wire format does no I/O
// and knows no transport, the protocol core knows neither CoAP nor the
// mitigators, and flowspec stays a pure translation.
func TestLayering(t *testing.T) {
	const mod = "github.com/levee-dots/levee/"
	forbidden := map[string][]string{
		mod + "dots":                  {"github.com/plgd-dev/go-coap", "github.com/pion/dtls", "net/http", "go.etcd.io/bbolt", mod + "divert", mod + "dotsserver"},
		mod + "dots/data":             {"github.com/plgd-dev/go-coap", "github.com/pion/dtls", "net/http", "go.etcd.io/bbolt", mod + "divert", mod + "dotsserver", mod + "service", mod + "store"},
		mod + "dotsserver/mitigation": {"github.com/plgd-dev/go-coap", mod + "divert", mod + "store", "net/http", mod + "service"},
		mod + "dotsserver/session":    {"github.com/plgd-dev/go-coap", mod + "divert", mod + "store"},
		mod + "flowspec":              {"github.com/osrg/gobgp", "net/http", mod + "divert"},
		mod + "divert":                {"github.com/plgd-dev/go-coap", "github.com/osrg/gobgp", mod + "dotsserver"},
		mod + "store":                 {"github.com/plgd-dev/go-coap", mod + "dotsserver", mod + "divert"},
		// The mitigation service knows no transport and no backend: only
		// the divert interfaces.
		mod + "service": {"github.com/plgd-dev/go-coap", "github.com/pion/dtls", "net/http", "github.com/osrg/gobgp",
			"github.com/miekg/dns", mod + "dotsserver/dotstest", mod + "divert/bgp", mod + "divert/dns", "github.com/prometheus", mod + "metrics"},
		// Metrics read the components through their hooks and read
		// methods: no component knows Prometheus.
		mod + "dotsserver": {"github.com/prometheus", mod + "metrics"},
		mod + "divert/bgp": {"github.com/prometheus", mod + "metrics"},
		mod + "divert/dns": {"github.com/prometheus", mod + "metrics"},
	}
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if dep == b || strings.HasPrefix(dep, b+"/") {
					t.Errorf("%s imports %s (via %s): layering violation", pkg, b, dep)
				}
			}
		}
	}
}
