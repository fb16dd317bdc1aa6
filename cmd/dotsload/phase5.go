package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/lab"
	"gopkg.in/yaml.v3"
)

type phase5Result struct {
	n       int
	lat     latencies
	skipped string // why the phase did not run (a router is not installed)
}

// routeTarget is the target of request j of phase 5: 203.0.113.1-120, then
// 2001:db8:6401::j (as in cmd/dotsd's BenchmarkPutToRoute).
func routeTarget(j int) string {
	if j < 120 {
		return fmt.Sprintf("203.0.113.%d/32", j+1)
	}
	a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x64, 0x01, 14: byte(j >> 8), 15: byte(j)})
	return a.String() + "/128"
}

// phase5: a dotsd of its own with a real ExaBGP as its only BGP neighbor;
// one session sends n RTBH requests for distinct targets, one after the
// other, each timed from the PUT until ExaBGP holds the route.
func phase5(ctx context.Context, e *env) (*phase5Result, error) {
	n := e.opts.routeRequests
	fmt.Fprintf(e.out, "\n== phase 5: PUT → route at ExaBGP, %d RTBH requests one after the other\n", n)
	fmt.Fprintf(e.out, "  (machine load average %s)\n", loadavg())
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second+time.Duration(n)*100*time.Millisecond)
	defer cancel()
	rt, err := startRouters(ctx, e.dir, e.out, "exabgp")
	if errors.Is(err, errSkipped) {
		fmt.Fprintf(e.out, "  phase skipped: %v\n", err)
		return &phase5Result{skipped: err.Error()}, nil
	}
	if err != nil {
		return nil, err
	}
	defer rt.close()
	srv, addr, err := e.startDiverting(ctx, "route", rt, map[string]any{
		"max-routes-per-domain": n + 100,
		"domains":               map[string]any{"load": map[string]any{"rtbh": true, "countermeasure": "rtbh"}},
	}, []string{"203.0.113.0/24", "2001:db8:6401::/48"})
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	c, err := dialSession(ctx, addr, e.opts.transport, e.roots, e.certs[0], nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := lab.WaitFor(ctx, 20*time.Second, func() (bool, string) { return rt.exa.Established(), "exabgp not established" }); err != nil {
		return nil, err
	}
	lat := make([]time.Duration, 0, n)
	for j := range n {
		pfx := routeTarget(j)
		seen := rt.exa.Updates()
		start := time.Now()
		o, _, err := timed(ctx, dots.Created, func(ctx context.Context) (*dotsclient.Response, error) {
			return c.Mitigate(ctx, uint32(j+1), scope(pfx))
		})
		if o != okay {
			return nil, fmt.Errorf("PUT %s: %v", pfx, err)
		}
		for {
			// Routes sorts the whole table: read it only when an UPDATE came in.
			if u := rt.exa.Updates(); u != seen {
				seen = u
				if slices.ContainsFunc(rt.exa.Routes(), func(r lab.Route) bool { return r.Prefix == pfx }) {
					break
				}
			}
			if time.Since(start) > 10*time.Second {
				return nil, fmt.Errorf("%s did not reach ExaBGP within 10 s", pfx)
			}
			time.Sleep(250 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	if !srv.alive() {
		return nil, fmt.Errorf("the phase 5 server exited:\n%s", srv.lastLines())
	}
	r := &phase5Result{n: n, lat: summarize(lat)}
	fmt.Fprintf(e.out, "  PUT → route at ExaBGP %s\n", r.lat)
	if k, _ := srv.problemReport(); k > 0 {
		fmt.Fprintf(e.out, "  phase 5 server log: %d WARN/ERROR lines\n", k)
	}
	return r, nil
}

// startDiverting runs a dotsd of its own in e.dir/name (own port, store and
// admin socket) with the dev PKI, the "load" client domain owning prefixes
// and a divert.bgp section with the given keys plus the speaker's identity
// and the routers of rt as neighbors. It returns the server and its address.
func (e *env) startDiverting(ctx context.Context, name string, rt *routers, bgp map[string]any, prefixes []string) (*child, string, error) {
	cfg, addr, err := e.writeDivertConfig(name, rt, bgp, prefixes)
	if err != nil {
		return nil, "", err
	}
	c, err := startDotsd(ctx, e.opts.dotsd, []string{"--config", cfg}, 30*time.Second)
	return c, addr, err
}

// writeDivertConfig writes e.dir/name/dotsd.yaml for startDiverting and
// returns its path and the signal address.
func (e *env) writeDivertConfig(name string, rt *routers, bgp map[string]any, prefixes []string) (string, string, error) {
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	port, err := freePort()
	if err != nil {
		return "", "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	b := map[string]any{"local-as": 65001, "router-id": "192.0.2.254", "neighbors": rt.neighborsYAML(100000)}
	for k, v := range bgp {
		b[k] = v
	}
	cfg := map[string]any{
		"signal": map[string]any{"listen": []string{addr}},
		"tls": map[string]any{"certificate": filepath.Join(e.dir, "server", "cert.pem"),
			"key": filepath.Join(e.dir, "server", "key.pem"), "client-cas": []string{filepath.Join(e.dir, "ca.pem")}},
		"store":  map[string]any{"path": filepath.Join(dir, "levee.db")},
		"log":    map[string]any{"level": "info"},
		"policy": map[string]any{"active-but-terminating": "1s", "max-requests-per-client": 100000},
		"clients": []any{map[string]any{"name": "load", "prefixes": prefixes,
			"match": map[string]any{"dns-names": []string{loadDNSName}}}},
		"divert": map[string]any{"bgp": b},
	}
	if e.opts.memoryLimitMiB > 0 {
		cfg["memory-limit-mib"] = e.opts.memoryLimitMiB
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", "", err
	}
	path := filepath.Join(dir, "dotsd.yaml")
	return path, addr, os.WriteFile(path, append([]byte("# dotsload "+name+" configuration\n"), out...), 0o644)
}
