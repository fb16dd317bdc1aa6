package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// ExaBGP is a running ExaBGP 4.2 whose API helper appends every JSON message
// it gets to a file; the readers replay that file.
type ExaBGP struct {
	d    *daemon
	o    Options
	path string // received.jsonl

	mu      sync.Mutex
	off     int64            // bytes of path consumed
	partial []byte           // an incomplete last line
	rib     map[string]Route // by family and key
	up      bool
	closed  bool
	updates int
	errs    []string
}

var _ Peer = (*ExaBGP)(nil)

// exabgpSink is the API helper. ExaBGP treats EOF on a helper's stdout as its
// death and restarts it, so the helper must keep running: a read loop, not
// "exec cat".
const exabgpSink = `#!/bin/sh
echo $$ > "$1.pid"
while IFS= read -r line; do printf '%s\n' "$line" >> "$1"; done
`

// StartExaBGP starts exabgp as a passive peer that prints what it receives.
// It skips the test when ExaBGP is not installed (fails it when CI is set)
// and stops exabgp at cleanup.
func StartExaBGP(t testing.TB, o Options) *ExaBGP {
	t.Helper()
	exabgp := need(t, "exabgp", "exabgp", "/usr/sbin/exabgp")
	o = o.withDefaults(t, "127.0.0.4")
	e := &ExaBGP{rib: map[string]Route{}}
	e.d = launch(t, "exabgp", &o, func(ap netip.AddrPort) (*daemon, error) {
		dir, err := makeDir("exabgp")
		if err != nil {
			return nil, err
		}
		received := filepath.Join(dir, "received.jsonl")
		sink := filepath.Join(dir, "sink.sh")
		conf := filepath.Join(dir, "exabgp.conf")
		err = os.WriteFile(sink, []byte(exabgpSink), 0o755)
		if err == nil {
			err = os.WriteFile(received, nil, 0o644)
		}
		if err == nil {
			err = os.WriteFile(conf, []byte(exabgpConfig(ap, o, sink+" "+received)), 0o644)
		}
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		d, err := spawn("exabgp", dir, exabgp, []string{conf}, exabgpEnv(dir))
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		d.extra = func() []int { return sinkPIDs(received + ".pid") }
		d.logs = []string{filepath.Join(dir, "exabgp.log"), received}
		if err := d.waitReady(t.Context(), ap, noCheck); err != nil {
			d.stop()
			return nil, err
		}
		e.path = received
		return d, nil
	})
	e.o = o
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab: exabgp on %v output:\n%s", o.Addr, e.d.output())
		}
		if err := e.Close(); err != nil {
			t.Errorf("lab: %v", err)
		}
	})
	return e
}

func noCheck(context.Context) error { return nil }

func exabgpConfig(ap netip.AddrPort, o Options, sinkCmd string) string {
	rid := "192.0.2.253"
	if ap.Addr().Is4() {
		rid = ap.Addr().String()
	}
	var fams []string
	for _, f := range []struct{ name, exa string }{
		{IPv4Unicast, "ipv4 unicast"}, {IPv6Unicast, "ipv6 unicast"},
		{IPv4FlowSpec, "ipv4 flow"}, {IPv6FlowSpec, "ipv6 flow"},
	} {
		if o.has(f.name) {
			fams = append(fams, f.exa+";")
		}
	}
	return fmt.Sprintf(`process sink { run %s; encoder json; }
neighbor %s {
  router-id %s; local-address %s; local-as %d; peer-as %d;
  passive true; listen %d;
  family { %s }
  api { processes [ sink ]; neighbor-changes; receive { parsed; update; } }
}
`, sinkCmd, o.SpeakerAddr, rid, ap.Addr(), PeerAS, o.SpeakerAS, ap.Port(), strings.Join(fams, " "))
}

// exabgpEnv keeps ExaBGP in the foreground, as the current user, without its
// CLI pipes, logging to dir.
func exabgpEnv(dir string) []string {
	name := "root"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return []string{
		"exabgp.daemon.user=" + name, // only used when root; root stays root
		"exabgp.daemon.drop=false",
		"exabgp.daemon.daemonize=false",
		"exabgp.api.cli=false",
		"exabgp.log.destination=" + filepath.Join(dir, "exabgp.log"),
		"exabgp.log.level=INFO",
	}
}

// sinkPIDs returns the helper's pid if it is still our helper. ExaBGP puts
// helpers in their own process group, so stopping exabgp's group misses it.
func sinkPIDs(pidFile string) []int {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return nil
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(filepath.Dir(pidFile))) {
		return nil
	}
	if syscall.Kill(pid, 0) != nil {
		return nil
	}
	return []int{pid}
}

func (e *ExaBGP) Name() string         { return "exabgp" }
func (e *ExaBGP) Addr() netip.AddrPort { return e.o.Addr }

// Dir is the directory holding the configuration and logs (removed by Close).
func (e *ExaBGP) Dir() string { return e.d.dir }

func (e *ExaBGP) AS() uint32 { return PeerAS }

// Close stops exabgp and its helper and removes its directory. It is
// idempotent; the readers keep returning what was read before.
func (e *ExaBGP) Close() error {
	e.mu.Lock()
	e.read()
	e.closed = true
	e.mu.Unlock()
	return e.d.stop()
}

// Routes returns the routes currently received: announcements add or
// replace, withdrawals remove, and a session going down clears them.
func (e *ExaBGP) Routes() []Route {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.read()
	out := make([]Route, 0, len(e.rib))
	for _, r := range e.rib {
		out = append(out, r)
	}
	SortRoutes(out)
	return out
}

// Established reports whether the last state message was "up" (and Close
// has not been called).
func (e *ExaBGP) Established() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.read()
	return e.up && !e.closed
}

// Updates returns the number of UPDATE messages received so far.
func (e *ExaBGP) Updates() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.read()
	return e.updates
}

// Errors returns the messages that could not be read, if any.
func (e *ExaBGP) Errors() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.read()
	return slices.Clone(e.errs)
}

// read consumes the complete lines appended since the last call.
func (e *ExaBGP) read() {
	f, err := os.Open(e.path)
	if err != nil {
		return // removed by Close: keep the last state
	}
	defer f.Close()
	if _, err := f.Seek(e.off, 0); err != nil {
		return
	}
	var buf bytes.Buffer
	n, _ := buf.ReadFrom(f)
	e.off += n
	data := append(e.partial, buf.Bytes()...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		if line := bytes.TrimSpace(data[:i]); len(line) > 0 {
			if err := e.apply(line); err != nil {
				e.errs = append(e.errs, err.Error())
			}
		}
		data = data[i+1:]
	}
	e.partial = slices.Clone(data)
}

type exaMessage struct {
	Type     string `json:"type"`
	Neighbor struct {
		State   string `json:"state"`
		Message struct {
			Update *struct {
				Attribute struct {
					Community [][2]uint32 `json:"community"`
					Extended  []struct {
						Value json.Number `json:"value"`
					} `json:"extended-community"`
				} `json:"attribute"`
				Announce map[string]map[string][]json.RawMessage `json:"announce"`
				Withdraw map[string][]json.RawMessage            `json:"withdraw"`
			} `json:"update"`
		} `json:"message"`
	} `json:"neighbor"`
}

var exaFamilies = map[string]string{"ipv4 unicast": IPv4Unicast, "ipv6 unicast": IPv6Unicast,
	"ipv4 flow": IPv4FlowSpec, "ipv6 flow": IPv6FlowSpec}

func (e *ExaBGP) apply(line []byte) error {
	var m exaMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("exabgp: %v: %s", err, truncate(string(line), 300))
	}
	switch m.Type {
	case "state":
		e.up = m.Neighbor.State == "up"
		if !e.up {
			clear(e.rib)
		}
		return nil
	case "update":
	default:
		return nil
	}
	e.updates++
	u := m.Neighbor.Message.Update
	if u == nil {
		return nil // End-of-RIB
	}
	for fam, nlris := range u.Withdraw {
		family, ok := exaFamilies[fam]
		if !ok {
			continue
		}
		for _, raw := range nlris {
			r, err := exaNLRI(family, raw)
			if err != nil {
				return err
			}
			delete(e.rib, family+" "+r.Key())
		}
	}
	var comms []uint32
	for _, c := range u.Attribute.Community {
		comms = append(comms, c[0]<<16|c[1]&0xFFFF)
	}
	var actions []string
	for _, x := range u.Attribute.Extended {
		v, err := strconv.ParseUint(string(x.Value), 10, 64)
		if err != nil {
			return fmt.Errorf("exabgp: extended community %q: %v", x.Value, err)
		}
		actions = append(actions, extCommunity(v))
	}
	for fam, byNextHop := range u.Announce {
		family, ok := exaFamilies[fam]
		if !ok {
			continue
		}
		for nh, nlris := range byNextHop {
			for _, raw := range nlris {
				r, err := exaNLRI(family, raw)
				if err != nil {
					return err
				}
				if r.FlowSpec == nil && nh != "no-nexthop" {
					r.NextHop = fsPrefixAddr(nh)
				}
				r.Communities = communityStrings(slices.Clone(comms))
				r.Actions = sortedOrNil(slices.Clone(actions))
				e.rib[family+" "+r.Key()] = r
			}
		}
	}
	return nil
}

// exaNLRI reads {"nlri": "203.0.113.10/32"} or a flow such as
// {"destination-ipv4": ["203.0.113.10/32"], "protocol": ["=tcp"], "string": "..."}.
func exaNLRI(family string, raw json.RawMessage) (Route, error) {
	r := Route{Family: family}
	if !strings.HasSuffix(family, "flowspec") {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			var n struct {
				NLRI string `json:"nlri"`
			}
			if err := json.Unmarshal(raw, &n); err != nil {
				return r, fmt.Errorf("exabgp: nlri %s: %v", raw, err)
			}
			s = n.NLRI
		}
		r.Prefix = fsPrefix(s, 0)
		return r, nil
	}
	var comps map[string]json.RawMessage
	if err := json.Unmarshal(raw, &comps); err != nil {
		return r, fmt.Errorf("exabgp: flow %s: %v", raw, err)
	}
	r.FlowSpec = map[string]string{}
	for name, v := range comps {
		var elems []string
		if json.Unmarshal(v, &elems) != nil {
			continue // "string", "rd" and other non-component fields
		}
		comp := canonicalComponent(name)
		if comp == "destination" || comp == "source" {
			p, off := elems[0], 0
			if i := strings.Count(p, "/"); i == 2 { // IPv6 "prefix/len/offset"
				j := strings.LastIndexByte(p, '/')
				off, _ = strconv.Atoi(p[j+1:])
				p = p[:j]
			}
			r.FlowSpec[comp] = fsPrefix(p, off)
			continue
		}
		r.FlowSpec[comp] = formatItems(comp, exaItems(comp, elems))
	}
	return r, nil
}

// exaItems reads ExaBGP's operator strings: the list is ORed, "&" inside an
// element ANDs, values may be names ("=tcp", "=syn&!ack", "=is-fragment").
func exaItems(comp string, elems []string) []fsItem {
	var items []fsItem
	for _, el := range elems {
		for j, part := range strings.Split(el, "&") {
			if part == "" {
				continue
			}
			it := fsItem{and: j > 0}
			i := strings.IndexFunc(part, func(r rune) bool { return !strings.ContainsRune("=<>!", r) })
			if i < 0 {
				i = len(part)
			}
			it.op, it.val = part[:i], namedValue(comp, part[i:])
			if part == "true" || part == "false" {
				it.op, it.val = part, ""
			} else if !bitmaskComponents[comp] {
				if op, ok := symbolsOp(it.op); ok {
					it.op = op
				}
			}
			items = append(items, it)
		}
	}
	return items
}
