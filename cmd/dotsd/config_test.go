package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// goodConfig is a complete, valid configuration; the error cases below
// each break one part of it.
const goodConfig = `signal:
  listen: ["127.0.0.1:4646", "[::1]:4646"]
  notify-interval: 5s
tls:
  certificate: server/cert.pem
  key: server/key.pem
  client-cas: [ca.pem, /etc/levee/other-ca.pem]
store:
  path: levee.db
resolver:
  servers: ["192.0.2.53:53"]
  timeout: 2s
policy:
  allow-indefinite-lifetime: false
  max-lifetime: 2h
log:
  level: debug
  format: json
clients:
  - name: alpha
    prefixes: ["203.0.113.0/25", "2001:db8:6401::/48"]
    match:
      common-names: [alpha]
  - name: beta
    prefixes: ["203.0.113.128/25"]
    match:
      spki-pins: ["Zm9v"]
`

// escalationBGP is a BGP section that lets alpha, not beta, be blackholed.
const escalationBGP = `divert:
  bgp:
    local-as: 65001
    router-id: 192.0.2.254
    scrubbing: {next-hop-v4: 198.51.100.1}
    domains: {alpha: {rtbh: true}}
    neighbors: [{name: edge, address: 127.0.0.1, port: 1179, peer-as: 65000}]
`

// TestEscalationConfig: a full ladder is accepted and handed to the
// service as written.
func TestEscalationConfig(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, "dotsd.yaml", goodConfig+escalationBGP+
		"escalation:\n  alpha: {steps: [flowspec, scrubbing, rtbh], up-after: 45s, down-after: 10m}\n  beta: {steps: [flowspec, scrubbing]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Escalation
	if a := l["alpha"]; !slices.Equal(a.Steps, []string{"flowspec", "scrubbing", "rtbh"}) || a.Up != 45*time.Second || a.Down != 10*time.Minute {
		t.Fatalf("alpha's ladder %+v", a)
	}
	if b := l["beta"]; !slices.Equal(b.Steps, []string{"flowspec", "scrubbing"}) || b.Up != 0 {
		t.Fatalf("beta's ladder %+v", b)
	}
}

// writeConfig writes text to DIR/NAME in a fresh temporary directory.
func writeConfig(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// edit returns goodConfig with old replaced by new, which must occur once.
func edit(t *testing.T, old, new string) string {
	t.Helper()
	if n := strings.Count(goodConfig, old); n != 1 {
		t.Fatalf("test bug: %q occurs %d times in goodConfig", old, n)
	}
	return strings.Replace(goodConfig, old, new, 1)
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		old  string // replaced by new in goodConfig; empty: the file is text
		new  string
		text string
		want []string // substrings of the error besides the file name
	}{
		{name: "unknown key", text: "signal: {lisen: [\"127.0.0.1:4646\"]}\n", want: []string{"lisen", "line 1"}},
		{name: "unknown nested key in a full file", old: "  notify-interval: 5s\n", new: "  notify-intervall: 5s\n", want: []string{"notify-intervall", "line 3"}},
		{name: "unknown top-level key", old: "store:\n", new: "stor:\n", want: []string{"stor"}},
		{name: "missing signal.listen", old: "  listen: [\"127.0.0.1:4646\", \"[::1]:4646\"]\n", want: []string{"signal.listen"}},
		{name: "empty signal.listen", old: `listen: ["127.0.0.1:4646", "[::1]:4646"]`, new: "listen: []", want: []string{"signal.listen"}},
		{name: "listen address without port", old: `"[::1]:4646"`, new: `"127.0.0.1"`, want: []string{"signal.listen[1]", "127.0.0.1"}},
		{name: "listen IPv6 without brackets", old: `"[::1]:4646"`, new: `"::1:4646"`, want: []string{"signal.listen[1]"}},
		{name: "listen with empty port", old: `"[::1]:4646"`, new: `"[::1]:"`, want: []string{"signal.listen[1]"}},
		{name: "listen with port 0", old: `"[::1]:4646"`, new: `"[::1]:0"`, want: []string{"signal.listen[1]"}},
		{name: "listen with port out of range", old: `"[::1]:4646"`, new: `"[::1]:65536"`, want: []string{"signal.listen[1]"}},
		{name: "listen with non-numeric port", old: `"[::1]:4646"`, new: `"[::1]:dots"`, want: []string{"signal.listen[1]"}},
		{name: "negative udp-receive-buffer", old: "  notify-interval: 5s\n", new: "  udp-receive-buffer: -1\n", want: []string{"signal.udp-receive-buffer:"}},
		{name: "negative notify-interval", old: "notify-interval: 5s", new: "notify-interval: -5s", want: []string{"signal.notify-interval:"}},
		{name: "missing tls.certificate", old: "  certificate: server/cert.pem\n", want: []string{"tls.certificate:"}},
		{name: "missing tls.key", old: "  key: server/key.pem\n", want: []string{"tls.key:"}},
		{name: "missing tls.client-cas", old: "  client-cas: [ca.pem, /etc/levee/other-ca.pem]\n", want: []string{"tls.client-cas"}},
		{name: "missing store.path", old: "  path: levee.db\n", want: []string{"store.path"}},
		{name: "bad resolver server", old: `"192.0.2.53:53"`, new: `"192.0.2.53"`, want: []string{"resolver.servers[0]"}},
		{name: "resolver server with empty port", old: `"192.0.2.53:53"`, new: `"192.0.2.53:"`, want: []string{"resolver.servers[0]"}},
		{name: "negative resolver timeout", old: "timeout: 2s", new: "timeout: -2s", want: []string{"resolver.timeout:"}},
		{name: "bad log.level", old: "level: debug", new: "level: verbose", want: []string{"log.level", "verbose"}},
		{name: "bad log.format", old: "format: json", new: "format: xml", want: []string{"log.format", "xml"}},
		{name: "negative duration", old: "max-lifetime: 2h", new: "max-lifetime: -1h", want: []string{"policy"}},
		{name: "duration without unit", old: "max-lifetime: 2h", new: "max-lifetime: 7200", want: []string{"7200"}},
		{name: "no clients", old: goodConfig[strings.Index(goodConfig, "clients:"):], new: "clients: []\n", want: []string{"clients"}},
		{name: "client without name", old: "  - name: beta\n    prefixes", new: "  - prefixes", want: []string{"clients[1].name"}},
		{name: "duplicate client name", old: "name: beta", new: "name: alpha", want: []string{"clients[1].name", "alpha"}},
		{name: "client without prefixes", old: `    prefixes: ["203.0.113.128/25"]` + "\n", want: []string{"clients[1].prefixes"}},
		{name: "bad prefix", old: `"203.0.113.0/25"`, new: `"203.0.113.0/33"`, want: []string{"clients[0].prefixes[0]", "203.0.113.0/33"}},
		{name: "address instead of prefix", old: `"2001:db8:6401::/48"`, new: `"2001:db8:6401::1"`, want: []string{"clients[0].prefixes[1]"}},
		{name: "client without match", old: "    match:\n      common-names: [alpha]\n", want: []string{"clients[0].match", "alpha"}},
		{name: "client with empty match", old: "common-names: [alpha]", new: "common-names: []", want: []string{"clients[0].match"}},
		{name: "escalation of an unknown domain", text: goodConfig + "escalation:\n  gamma: {steps: [flowspec]}\n", want: []string{"escalation.gamma", `no client domain is named "gamma"`}},
		{name: "escalation without steps", text: goodConfig + "escalation:\n  alpha: {up-after: 30s}\n", want: []string{"escalation.alpha.steps", "at least one countermeasure"}},
		{name: "escalation with an unknown step", text: goodConfig + "escalation:\n  alpha: {steps: [flowspec, ddos]}\n", want: []string{"escalation.alpha.steps[1]", `"ddos" is not a countermeasure`}},
		{name: "escalation step twice", text: goodConfig + "escalation:\n  alpha: {steps: [flowspec, flowspec]}\n", want: []string{"escalation.alpha.steps[1]", "named twice"}},
		{name: "escalation too fast", text: goodConfig + "escalation:\n  alpha: {steps: [flowspec], up-after: 10ms}\n", want: []string{"escalation.alpha.up-after: 10ms is less than 1s"}},
		{name: "escalation to flowspec without bgp", text: goodConfig + "escalation:\n  alpha: {steps: [flowspec]}\n", want: []string{"escalation.alpha.steps[0]", "flowspec needs divert.bgp"}},
		{name: "escalation to scrubbing without an on-ramp", text: goodConfig + "escalation:\n  alpha: {steps: [scrubbing]}\n", want: []string{"escalation.alpha.steps[0]", "scrubbing needs an on-ramp"}},
		{name: "escalation to rtbh without rights", text: goodConfig + escalationBGP + "escalation:\n  beta: {steps: [flowspec, rtbh]}\n",
			want: []string{"escalation.beta.steps[1]", `client domain "beta" may not be blackholed`, "divert.bgp.domains.beta.rtbh: true"}},
		{name: "empty file", text: "", want: []string{"configuration is empty"}},
		{name: "only comments", text: "# nothing yet\n", want: []string{"configuration is empty"}},
		{name: "second YAML document", text: goodConfig + "---\nlog: {level: info}\n", want: []string{"more than one YAML document"}},
		{name: "not YAML", text: "signal: [\n", want: []string{"yaml"}},
		{name: "wrong type", old: "  listen: [\"127.0.0.1:4646\", \"[::1]:4646\"]\n", new: "  listen: {a: b}\n", want: []string{"line 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text
			if tc.old != "" {
				text = edit(t, tc.old, tc.new)
			}
			path := writeConfig(t, "dotsd.yaml", text)
			cfg, err := loadConfig(path)
			if err == nil {
				t.Fatalf("loadConfig accepted\n%s\nas %+v", text, cfg)
			}
			for _, w := range append([]string{path}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestConfigValues checks that a value of the wrong type names its key,
// and that a zero where zero would silently become a default is refused.
func TestConfigValues(t *testing.T) {
	const dnsSection = "divert:\n  dns:\n    retries: 0\n"
	const bgpSection = "divert:\n  bgp:\n    local-as: 65001\n    router-id: 192.0.2.254\n"
	for _, tc := range []struct {
		name     string
		old, new string // in goodConfig
		add      string // appended to goodConfig
		want     []string
	}{
		{name: "duration not parsed", old: "notify-interval: 5s", new: "notify-interval: abc",
			want: []string{`signal.notify-interval: "abc" is not a duration (e.g. 60s) (line 3)`}},
		{name: "duration without unit", old: "notify-interval: 5s", new: "notify-interval: 5",
			want: []string{`signal.notify-interval: "5" is not a duration (e.g. 60s): a number needs a unit, as in 5s`}},
		{name: "long bad duration", old: "timeout: 2s", new: "timeout: two-seconds-please",
			want: []string{`resolver.timeout: "two-seconds-please" is not a duration`}},
		{name: "two bad values on one line", old: "signal:\n  listen: [\"127.0.0.1:4646\", \"[::1]:4646\"]\n  notify-interval: 5s\n",
			new:  "signal: {listen: [\"127.0.0.1:4646\"], notify-interval: x, udp-receive-buffer: y}\n",
			want: []string{`signal.notify-interval: "x" is not a duration (e.g. 60s) (line 1); signal.udp-receive-buffer: "y" is not a whole number (line 1)`}},
		{name: "same bad value twice on one line", old: "signal:\n  listen: [\"127.0.0.1:4646\", \"[::1]:4646\"]\n  notify-interval: 5s\n",
			new:  "signal: {listen: [\"127.0.0.1:4646\"], notify-interval: x, config-max-age: x}\n",
			want: []string{`signal.notify-interval: "x" is not a duration (e.g. 60s) (line 1); signal.config-max-age: "x" is not a whole number from 0 to 4294967295 (line 1)`}},
		{name: "bad bool", old: "allow-indefinite-lifetime: false", new: "allow-indefinite-lifetime: maybe",
			want: []string{`policy.allow-indefinite-lifetime: "maybe" is not true or false`}},
		{name: "negative into uint32", old: "notify-interval: 5s", new: "config-max-age: -1",
			want: []string{`signal.config-max-age: "-1" is not a whole number from 0 to 4294967295`}},
		{name: "string for a list", old: `prefixes: ["203.0.113.128/25"]`, new: `prefixes: "203.0.113.128/25"`,
			want: []string{`clients[1].prefixes: "203.0.113.128/25" where a list is expected`}},
		{name: "unknown nested key has its path", old: "format: json", new: "formt: json",
			want: []string{`unknown key "log.formt" at line 18`}},
		{name: "active-but-terminating 0s", old: "max-lifetime: 2h", new: "active-but-terminating: 0s",
			want: []string{`policy.active-but-terminating: "0s": must be positive; leave the key out for the default 120s`}},
		{name: "max-active-but-terminating 0s", old: "max-lifetime: 2h", new: "max-active-but-terminating: 0s",
			want: []string{"policy.max-active-but-terminating:", "default 300s"}},
		{name: "active-but-terminating 0m0s", old: "max-lifetime: 2h", new: "active-but-terminating: 0m0s",
			want: []string{"policy.active-but-terminating:"}},
		{name: "notify-interval 0s", old: "notify-interval: 5s", new: "notify-interval: 0s", want: []string{"signal.notify-interval:", "default 60s"}},
		{name: "notify-interval without value", old: "notify-interval: 5s", new: "notify-interval:",
			want: []string{"signal.notify-interval: no value (line 3)"}},
		{name: "config-max-age 0", old: "notify-interval: 5s", new: "config-max-age: 0", want: []string{"signal.config-max-age:", "3600"}},
		{name: "udp-receive-buffer 0", old: "notify-interval: 5s", new: "udp-receive-buffer: 0", want: []string{"signal.udp-receive-buffer:"}},
		{name: "resolver timeout 0s", old: "timeout: 2s", new: "timeout: 0s", want: []string{"resolver.timeout:", "default 2s"}},
		{name: "max-requests-per-client 0", old: "max-lifetime: 2h", new: "max-requests-per-client: 0", want: []string{"policy.max-requests-per-client:"}},
		{name: "max-requests-per-client negative", old: "max-lifetime: 2h", new: "max-requests-per-client: -1", want: []string{"policy.max-requests-per-client:"}},
		{name: "negative max-lifetime", old: "max-lifetime: 2h", new: "max-lifetime: -1h", want: []string{"policy.max-lifetime: -1h0m0s: must not be negative"}},
		{name: "active-but-terminating above the default maximum", old: "max-lifetime: 2h", new: "active-but-terminating: 10m",
			want: []string{"policy.max-active-but-terminating:", "5m0s is less than policy.active-but-terminating 10m0s"}},
		{name: "maximum below active-but-terminating", old: "max-lifetime: 2h", new: "active-but-terminating: 60s\n  max-active-but-terminating: 30s",
			want: []string{"policy.max-active-but-terminating:"}},
		{name: "dns retries 0", add: dnsSection, want: []string{"divert.dns.retries:", "-1"}},
		{name: "dns ttl 0", add: "divert:\n  dns:\n    ttl: 0\n", want: []string{"divert.dns.ttl:"}},
		{name: "dns backoff 0s", add: "divert:\n  dns:\n    backoff: 0s\n", want: []string{"divert.dns.backoff:"}},
		{name: "dns bad timeout", add: "divert:\n  dns:\n    timeout: 5\n", want: []string{`divert.dns.timeout: "5" is not a duration`}},
		{name: "bgp peer-wait is refused", add: bgpSection + "    peer-wait: 3s\n", want: []string{`unknown key "divert.bgp.peer-wait"`}},
		{name: "bgp neighbor port 0", add: bgpSection + "    neighbors: [{address: 192.0.2.11, peer-as: 65000, port: 0}]\n",
			want: []string{"divert.bgp.neighbors[0].port:", "179"}},
		{name: "bgp min prefix length 0", add: bgpSection + "    min-prefix-length-v4: 0\n", want: []string{"divert.bgp.min-prefix-length-v4:"}},
		{name: "bgp restart-time 0", add: bgpSection + "    graceful-restart: {enabled: true, restart-time: 0}\n",
			want: []string{"divert.bgp.graceful-restart.restart-time:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := goodConfig + tc.add
			if tc.old != "" {
				text = edit(t, tc.old, tc.new) + tc.add
			}
			path := writeConfig(t, "dotsd.yaml", text)
			cfg, err := loadConfig(path)
			if err == nil {
				t.Fatalf("loadConfig accepted\n%s\nas %+v", text, cfg)
			}
			for _, w := range append([]string{path + ": "}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// Zero where it has a meaning, and an absent key, are accepted.
	for _, text := range []string{
		edit(t, "max-lifetime: 2h", "max-lifetime: 0s"),
		goodConfig + "memory-limit-mib: 0\n",
		goodConfig + bgpSection + "    listen-port: 0\n    neighbors: [{address: 192.0.2.11, peer-as: 65000}]\n",
		edit(t, "  notify-interval: 5s\n", ""),
		edit(t, "max-lifetime: 2h", "active-but-terminating: 5s\n  max-active-but-terminating: 5s"),
	} {
		if _, err := loadConfig(writeConfig(t, "dotsd.yaml", text)); err != nil {
			t.Errorf("loadConfig refused a good file: %v\n%s", err, text)
		}
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := loadConfig(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("loadConfig(%s) = %v, want a not-exist error naming the file", path, err)
	}
}

func TestLoadConfigGood(t *testing.T) {
	path := writeConfig(t, "dotsd.yaml", goodConfig)
	dir := filepath.Dir(path)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	// Relative paths are relative to the file, absolute ones are kept.
	if want := filepath.Join(dir, "server", "cert.pem"); cfg.TLS.Certificate != want {
		t.Errorf("tls.certificate %q, want %q", cfg.TLS.Certificate, want)
	}
	if want := filepath.Join(dir, "server", "key.pem"); cfg.TLS.Key != want {
		t.Errorf("tls.key %q, want %q", cfg.TLS.Key, want)
	}
	if want := []string{filepath.Join(dir, "ca.pem"), "/etc/levee/other-ca.pem"}; !slices.Equal(cfg.TLS.ClientCAs, want) {
		t.Errorf("tls.client-cas %q, want %q", cfg.TLS.ClientCAs, want)
	}
	if want := filepath.Join(dir, "levee.db"); cfg.Store.Path != want {
		t.Errorf("store.path %q, want %q", cfg.Store.Path, want)
	}
	if want := []string{"127.0.0.1:4646", "[::1]:4646"}; !slices.Equal(cfg.Signal.Listen, want) {
		t.Errorf("signal.listen %q, want %q", cfg.Signal.Listen, want)
	}
	if cfg.Signal.NotifyInterval != 5*time.Second || cfg.Resolver.Timeout != 2*time.Second {
		t.Errorf("durations: notify-interval %v, resolver.timeout %v", cfg.Signal.NotifyInterval, cfg.Resolver.Timeout)
	}
	if got := cfg.resolver(nil).Servers(); !slices.Equal(got, cfg.Resolver.Servers) {
		t.Errorf("resolver asks %v, want resolver.servers %v", got, cfg.Resolver.Servers)
	}
	p := cfg.policy()
	if p.AllowIndefinite || p.MaxLifetime != 2*time.Hour {
		t.Errorf("policy %+v: want indefinite lifetimes refused and max-lifetime 2h", p)
	}
	doms := cfg.domains()
	if len(doms) != 2 || doms[0].Name != "alpha" || len(doms[0].Prefixes) != 2 || !slices.Equal(doms[0].CommonNames, []string{"alpha"}) ||
		doms[1].Name != "beta" || !slices.Equal(doms[1].SPKIPins, []string{"Zm9v"}) {
		t.Errorf("client domains %+v", doms)
	}

	// A configuration given by a relative path resolves against its directory.
	t.Chdir(filepath.Dir(dir))
	cfg, err = loadConfig(filepath.Join(filepath.Base(dir), "dotsd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Base(dir), "levee.db"); cfg.Store.Path != want {
		t.Errorf("store.path %q with a relative configuration path, want %q", cfg.Store.Path, want)
	}
}

// TestLoadConfigDefaults checks a minimal file and the defaults it implies.
func TestLoadConfigDefaults(t *testing.T) {
	path := writeConfig(t, "min.yaml", `signal: {listen: ["127.0.0.1:4646"]}
tls: {certificate: c.pem, key: k.pem, client-cas: [ca.pem]}
store: {path: /var/lib/levee/levee.db}
clients: [{name: a, prefixes: ["198.51.100.0/24"], match: {dns-names: [a.example]}}]
`)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Path != "/var/lib/levee/levee.db" {
		t.Errorf("absolute store.path changed to %q", cfg.Store.Path)
	}
	if !cfg.policy().AllowIndefinite {
		t.Error("indefinite lifetimes should be allowed unless the policy says otherwise")
	}
}

func TestRunErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bad := writeConfig(t, "bad.yaml", "signal: {lisen: [\"127.0.0.1:4646\"]}\n")
	// A valid file whose certificate does not exist: serve must fail
	// before it listens.
	noCert := writeConfig(t, "nocert.yaml", goodConfig)
	for _, tc := range []struct {
		name       string
		args       []string
		want       []string
		wantUsage  bool
		wantStderr string
	}{
		{name: "bad configuration", args: []string{"--config", bad}, want: []string{bad, "lisen"}},
		{name: "bad configuration with listen override", args: []string{"--config", bad, "--signal-listen", "127.0.0.1:0"}, want: []string{"lisen"}},
		{name: "no arguments", want: []string{"--config"}, wantUsage: true},
		{name: "listen without config", args: []string{"--signal-listen", "127.0.0.1:0"}, want: []string{"--config"}, wantUsage: true},
		{name: "missing configuration file", args: []string{"--config", filepath.Join(t.TempDir(), "absent.yaml")}, want: []string{"absent.yaml"}},
		{name: "missing certificate", args: []string{"--config", noCert}, want: []string{"tls.certificate"}},
		{name: "unknown flag", args: []string{"--confg", bad}, want: []string{"confg"}, wantStderr: "confg"},
		{name: "unexpected argument", args: []string{"--config", noCert, "extra"}, want: []string{"extra"}, wantUsage: true},
		{name: "dev with unexpected argument", args: []string{"dev", "--dir", t.TempDir(), "--signal-listen", "127.0.0.1:0", "now"}, want: []string{"now"}},
		{name: "dev without dir", args: []string{"dev"}, want: []string{"--dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(ctx, tc.args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("run(%q) returned nil\nstderr: %s", tc.args, &stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("run(%q) error %q does not mention %q", tc.args, err, w)
				}
			}
			if tc.wantUsage && !strings.Contains(stderr.String(), "usage:") {
				t.Errorf("run(%q) did not print the usage on stderr: %q", tc.args, &stderr)
			}
			if tc.wantStderr != "" && !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("run(%q) stderr %q does not mention %q", tc.args, &stderr, tc.wantStderr)
			}
		})
	}
}

// TestCLIExitStatus runs the binary: a bad configuration is reported on
// stderr as "dotsd: ..." with exit status 1.
func TestCLIExitStatus(t *testing.T) {
	bin := buildDotsd(t)
	bad := writeConfig(t, "bad.yaml", "signal: {lisen: [\"127.0.0.1:4646\"]}\n")
	for _, args := range [][]string{{"--config", bad}, {}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("dotsd %q: %v, want exit status 1\nstderr: %s", args, err, &stderr)
			continue
		}
		if !strings.Contains(stderr.String(), "dotsd: ") {
			t.Errorf("dotsd %q: stderr %q lacks the \"dotsd: \" error line", args, &stderr)
		}
	}
}

// configKeys returns the YAML keys of t and of the types below it, as
// patterns ("divert.bgp.neighbors[].port"; a map's keys are "*").
func configKeys(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		switch t.Kind() {
		case reflect.Slice:
			prefix += "[]"
		case reflect.Map:
			prefix += ".*"
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() == "time" {
		return nil
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		out = append(out, key)
		out = append(out, configKeys(f.Type, key)...)
	}
	return out
}

// TestConfigKeysDocumented fails when a key of the configuration file is
// not documented: every key must appear in README.md as YAML ("key:") or
// in backquotes ("`key`" or "`a.b.key`"); keys of divert.dns may be
// documented in divert/dns/README.md instead.
func TestConfigKeysDocumented(t *testing.T) {
	readme := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	top, dnsDoc := readme("../../README.md"), readme("../../divert/dns/README.md")
	keys := configKeys(reflect.TypeFor[fileConfig](), "")
	if len(keys) < 50 {
		t.Fatalf("found only %d keys: %q", len(keys), keys)
	}
	documented := func(doc, key string) bool {
		q := regexp.QuoteMeta(key)
		return regexp.MustCompile(`(?m)(^|[\s{,])`+q+`:`).MatchString(doc) ||
			regexp.MustCompile("`([\\w.\\[\\]*-]*\\.)?"+q+"`").MatchString(doc)
	}
	for _, pattern := range keys {
		refused := false
		for k := range refusedKeys {
			refused = refused || strings.ReplaceAll(pattern, ".*", "") == k || pattern == k
		}
		if refused {
			continue
		}
		leaf := pattern[strings.LastIndex(pattern, ".")+1:]
		if documented(top, leaf) || strings.HasPrefix(pattern, "divert.dns.") && documented(dnsDoc, leaf) {
			continue
		}
		where := "README.md"
		if strings.HasPrefix(pattern, "divert.dns.") {
			where = "README.md or divert/dns/README.md"
		}
		t.Errorf("configuration key %s is not documented in %s (as %q in a YAML example or `%s` in the text)", pattern, where, leaf+":", leaf)
	}
	// The refused keys are what the Go types still have: the table must not
	// name keys that no longer exist.
	for k := range refusedKeys {
		if !slices.Contains(keys, k) {
			t.Errorf("refusedKeys names %s, which is no longer a key of the configuration types: drop it", k)
		}
	}
	for k := range explicitKeys {
		if !slices.Contains(keys, k) {
			t.Errorf("explicitKeys names %s, which is not a key of the configuration types", k)
		}
	}
}
