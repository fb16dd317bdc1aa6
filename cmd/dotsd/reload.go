package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/pki"
	"github.com/levee-dots/levee/service"
)

// reloadable are the keys a reload applies while dotsd runs; a change of
// any other key is logged as needing a restart. A key covers the keys
// below it.
var reloadable = []string{
	"clients",
	"policy",
	"tls.client-cas",
	"tls.crl",
	"limits.max-observe-per-session",
	"limits.max-sessions-per-client",
	"limits.requests-per-second",
	"limits.request-burst",
	"divert.bgp.neighbors",
}

// reloader applies the configuration file to the running dotsd on SIGHUP.
type reloader struct {
	log     *slog.Logger
	srv     *dotsserver.Server
	svc     *service.Service
	speaker *bgp.Backend // nil: no BGP

	mu  sync.Mutex
	cur *fileConfig // what is in force
	// pskAtStart: the DTLS listeners offer the PSK suites only when a
	// client had a PSK at start.
	pskAtStart bool
}

func hasPSK(c *fileConfig) bool {
	return slices.ContainsFunc(c.Clients, func(cl clientConfig) bool { return len(cl.Match.PSK) > 0 })
}

// watchReload reloads the configuration on every SIGHUP until ctx ends;
// stop waits for a reload in progress.
func watchReload(ctx context.Context, r *reloader) (stop func()) {
	r.pskAtStart = hasPSK(r.cur)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				r.reload(ctx)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		<-done
	}
}

// reload reads the file again and applies what changed, or refuses it
// all, logging why, and keeps the running configuration.
func (r *reloader) reload(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	path := r.cur.path
	r.log.Info("reloading the configuration", "file", path)
	next, err := loadConfig(path)
	if err != nil {
		r.refused(path, err)
		return
	}
	next.listenFlag = r.cur.listenFlag
	if r.cur.listenFlag {
		next.Signal.Listen = r.cur.Signal.Listen
	}
	changed := changedKeys(reflect.ValueOf(*r.cur), reflect.ValueOf(*next), "")
	var apply, restart []string
	for _, k := range changed {
		if isReloadable(k) {
			apply = append(apply, k)
		} else {
			restart = append(restart, k)
		}
	}
	if err := r.apply(ctx, next, apply); err != nil {
		r.refused(path, err)
		return
	}
	for _, k := range restart {
		r.log.Warn("configuration key changed: it needs a restart to take effect; the running value stays", "key", k)
	}
	if !r.pskAtStart && hasPSK(next) {
		r.log.Warn("configuration key changed: the first PSK needs a restart to take effect: the DTLS listeners offer the PSK cipher suites only when a client had one at start",
			"key", "clients[].match.psk")
	}
	r.cur = r.inForce(next)
	r.log.Info("configuration reloaded", "file", path, "applied", strings.Join(apply, ","), "needs-restart", strings.Join(restart, ","))
}

// config returns the configuration in force.
func (r *reloader) config() *fileConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

func (r *reloader) refused(path string, err error) {
	r.log.Error("configuration reload refused: the running configuration stays", "file", path, "err", err)
}

func isReloadable(key string) bool {
	return slices.ContainsFunc(reloadable, func(k string) bool { return key == k || strings.HasPrefix(key, k+".") })
}

// apply puts the reloadable keys of next in force. A failure of the signal
// channel's part (a file it names does not load) changes nothing.
func (r *reloader) apply(ctx context.Context, next *fileConfig, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	signalKey := func(k string) bool { return !isPolicyKey(k) && !strings.HasPrefix(k, "divert.bgp.") }
	if slices.ContainsFunc(keys, signalKey) {
		if err := r.applySignal(next); err != nil {
			return err
		}
	}
	if slices.ContainsFunc(keys, isPolicyKey) {
		r.svc.SetPolicy(next.policy())
		r.log.Info("mitigation policy reloaded", "keys", strings.Join(keys, ","))
	}
	if slices.Contains(keys, "divert.bgp.neighbors") && r.speaker != nil {
		r.applyNeighbors(ctx, next.Divert.BGP.Neighbors)
	}
	return nil
}

func isPolicyKey(k string) bool { return k == "policy" || strings.HasPrefix(k, "policy.") }

// applySignal swaps the client domains, CAs, CRLs and limits of the
// signal channel.
func (r *reloader) applySignal(next *fileConfig) error {
	cas, err := pki.LoadCertPool(next.TLS.ClientCAs...)
	if err != nil {
		return fmt.Errorf("tls.client-cas: %w", err)
	}
	crl, err := next.crl()
	if err != nil {
		return err
	}
	res, err := r.srv.Reload(dotsserver.Reloadable{Domains: next.domains(), ClientCAs: cas, CRL: crl,
		RateLimit: next.Limits.rate(), Limits: next.Limits.server()})
	if err != nil {
		return fmt.Errorf("tls.crl: %w", err)
	}
	added, removed, changed := diffClients(r.cur.Clients, next.Clients)
	r.log.Info("clients reloaded", "added", strings.Join(added, ","), "removed", strings.Join(removed, ","),
		"changed", strings.Join(changed, ","), "sessions-closed", res.Closed, "sessions-remapped", res.Remapped)
	return nil
}

// applyNeighbors adds and deletes BGP neighbors; one that fails is logged
// and the others still change.
func (r *reloader) applyNeighbors(ctx context.Context, ns []bgp.Neighbor) {
	res, err := r.speaker.SetNeighbors(ctx, ns)
	if err != nil {
		r.log.Error("bgp neighbors not all reloaded: check divert.bgp.neighbors", "err", err)
	}
	r.log.Info("bgp neighbors reloaded", "added", strings.Join(res.Added, ","), "removed", strings.Join(res.Removed, ","),
		"changed", strings.Join(res.Changed, ","))
}

// inForce is next with the keys that need a restart as they run.
func (r *reloader) inForce(next *fileConfig) *fileConfig {
	c := *r.cur
	c.Clients, c.Policy = next.Clients, next.Policy
	c.TLS.ClientCAs, c.TLS.CRL = next.TLS.ClientCAs, next.TLS.CRL
	c.Limits.MaxObservePerSession, c.Limits.MaxSessionsPerClient = next.Limits.MaxObservePerSession, next.Limits.MaxSessionsPerClient
	c.Limits.RequestsPerSecond, c.Limits.RequestBurst = next.Limits.RequestsPerSecond, next.Limits.RequestBurst
	if r.speaker != nil && c.Divert.BGP != nil && next.Divert.BGP != nil {
		b := *c.Divert.BGP
		b.Neighbors = next.Divert.BGP.Neighbors
		c.Divert.BGP = &b
	}
	return &c
}

// diffClients names the client domains added, removed and changed.
func diffClients(cur, next []clientConfig) (added, removed, changed []string) {
	old := map[string]clientConfig{}
	for _, c := range cur {
		old[c.Name] = c
	}
	for _, c := range next {
		o, ok := old[c.Name]
		switch {
		case !ok:
			added = append(added, c.Name)
		case !reflect.DeepEqual(o, c):
			changed = append(changed, c.Name)
		}
		delete(old, c.Name)
	}
	for _, c := range cur {
		if _, gone := old[c.Name]; gone {
			removed = append(removed, c.Name)
		}
	}
	return added, removed, changed
}

// changedKeys returns the YAML keys whose values differ between a and b,
// two values of the same type: a struct's fields key by key, anything
// else (lists, maps, values, a section given in one file only) as one.
func changedKeys(a, b reflect.Value, prefix string) []string {
	if a.Kind() == reflect.Pointer && !a.IsNil() && !b.IsNil() {
		return changedKeys(a.Elem(), b.Elem(), prefix)
	}
	if a.Kind() != reflect.Struct || a.Type().PkgPath() == "time" {
		if reflect.DeepEqual(a.Interface(), b.Interface()) {
			return nil
		}
		return []string{prefix}
	}
	var out []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		out = append(out, changedKeys(a.Field(i), b.Field(i), key)...)
	}
	return out
}
