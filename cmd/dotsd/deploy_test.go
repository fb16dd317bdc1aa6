package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const deployConfig = "../../deploy/dotsd.yaml"

// commentedKey is a commented-out setting of deploy/dotsd.yaml: a '#'
// right before the key or list item, or before the extra indentation of a
// line below a commented-out section ("# " starts an explanation).
var commentedKey = regexp.MustCompile(`^(\s*)#(\S|\s{2,}\S)`)

// uncommentAll returns the file with every commented-out setting in force.
func uncommentAll(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if m := commentedKey.FindStringSubmatchIndex(l); m != nil && !strings.HasPrefix(strings.TrimSpace(l), "#!") {
			lines[i] = l[:m[3]] + l[m[3]+1:]
		}
	}
	return strings.Join(lines, "\n")
}

// TestDeployConfig: deploy/dotsd.yaml loads as dotsd loads it, and with
// its commented-out settings put in force it names every key of the
// configuration, each with a value of the right type.
func TestDeployConfig(t *testing.T) {
	if _, err := loadConfig(deployConfig); err != nil {
		t.Fatalf("the keys in force do not load: %v", err)
	}
	raw, err := os.ReadFile(deployConfig)
	if err != nil {
		t.Fatal(err)
	}
	all := uncommentAll(string(raw))
	var c fileConfig
	dec := yaml.NewDecoder(bytes.NewReader([]byte(all)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("with every commented-out setting in force: %v\n%s", err, all)
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(all), &root); err != nil {
		t.Fatal(err)
	}
	var present []string
	walkYAML(&root, "", "", func(e yamlEntry) { present = append(present, e.pattern) })
	for _, key := range configKeys(reflect.TypeFor[fileConfig](), "") {
		re := regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(key), `\*`, `[^.]+`) + "$")
		found := false
		for _, p := range present {
			found = found || re.MatchString(p)
		}
		if !found {
			t.Errorf("configuration key %s is not in %s (in force or commented out)", key, deployConfig)
		}
	}
}

// TestDeployUnits: the systemd units of deploy/ pass systemd-analyze
// verify without a word (an unknown directive is only a warning there),
// with the binaries they start built from this tree, and keep the
// hardening that deploy/README.md describes.
func TestDeployUnits(t *testing.T) {
	for _, tc := range []struct {
		unit, pkg string
		want      []string // lines the unit must have
		caps      string   // its AmbientCapabilities
	}{
		{"dotsd.service", ".", []string{"User=levee", "ExecStartPre=/usr/bin/dotsd check-config /etc/levee/dotsd.yaml",
			"ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=levee", "ProtectKernelTunables=yes",
			"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"}, ""},
		{"scrubd.service", "../scrubd", []string{"User=levee", "CapabilityBoundingSet=CAP_NET_ADMIN",
			"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK"}, "CAP_NET_ADMIN"},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("../../deploy", tc.unit))
			if err != nil {
				t.Fatal(err)
			}
			text := string(raw)
			lines := strings.Split(text, "\n")
			common := []string{"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
				"SystemCallFilter=@system-service", "UMask=0077", "AmbientCapabilities=" + tc.caps}
			for _, w := range append(common, tc.want...) {
				if !slices.Contains(lines, w) {
					t.Errorf("%s lacks the line %q", tc.unit, w)
				}
			}
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "ReadWritePaths=/var/lib/") }) {
				t.Errorf("%s lacks ReadWritePaths for its state", tc.unit)
			}
			analyze, err := exec.LookPath("systemd-analyze")
			if err != nil {
				t.Skip("systemd-analyze is not installed: the units are not verified")
			}
			bin := buildCommand(t, tc.pkg)
			name := "/usr/bin/" + filepath.Base(strings.TrimSuffix(tc.unit, ".service"))
			path := filepath.Join(t.TempDir(), tc.unit)
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, name, bin)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", tc.unit, err, out)
			}
		})
	}
}

// buildCommand builds the command in pkg (relative to cmd/dotsd).
func buildCommand(t *testing.T, pkg string) string {
	t.Helper()
	if pkg == "." {
		return buildDotsd(t)
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestDeployDockerfile: the Dockerfile builds static binaries of dotsd,
// dotsctl and scrubd in a build stage and runs dotsd as a non-root user on a
// distroless or scratch base.
func TestDeployDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	froms := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(text, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, found FROM %v", froms)
	}
	if final := froms[len(froms)-1][1]; !strings.Contains(final, "distroless/static") && final != "scratch" {
		t.Errorf("final stage %s: want distroless/static or scratch", final)
	}
	if !strings.Contains(text, "CGO_ENABLED=0") {
		t.Error("the build does not set CGO_ENABLED=0 (static binaries)")
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindAllStringSubmatch(text, -1)
	if len(user) == 0 || strings.HasPrefix(user[len(user)-1][1], "0") || strings.HasPrefix(user[len(user)-1][1], "root") {
		t.Errorf("the final stage runs as %v: want a non-root USER", user)
	}
	for _, c := range []string{"dotsd", "dotsctl", "scrubd"} { // what deploy/ ships; the lab and load tools stay out
		if _, err := os.Stat(filepath.Join("..", c)); err != nil {
			t.Errorf("cmd/%s: %v", c, err)
		}
		if !strings.Contains(text, "./cmd/"+c) || !strings.Contains(text, "/out/"+c) {
			t.Errorf("the Dockerfile does not build and copy cmd/%s", c)
		}
	}
	if !strings.Contains(text, `ENTRYPOINT ["/usr/bin/dotsd"]`) {
		t.Error("the image does not start dotsd")
	}
}
