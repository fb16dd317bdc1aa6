package scrub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Forwarding sysctls, as paths under /proc/sys.
const (
	forward4 = "net/ipv4/ip_forward"
	forward6 = "net/ipv6/conf/all/forwarding"
	// aliasPrefix starts the tunnel's alias, which records the sysctl
	// values from before the first Set so that Close restores them even
	// when an earlier process changed them (kill -9, keep-on-stop).
	aliasPrefix = "levee return path; restore"
)

// forwardingKeys are the sysctls the configured families need.
func (r *Return) forwardingKeys() []string {
	var keys []string
	for _, fam := range r.families() {
		if fam == unix.AF_INET {
			keys = append(keys, forward4)
		} else {
			keys = append(keys, forward6)
		}
	}
	return keys
}

// enableForwarding records the current values of the forwarding sysctls
// (once: in memory and in the tunnel's alias, written before any value is
// changed), then sets them to 1. prior is the alias the tunnel had before
// this Set.
func (r *Return) enableForwarding(h *netlink.Handle, link netlink.Link, prior string) error {
	saved := r.saved
	if saved == nil {
		saved = parseAlias(prior)
	}
	keys := r.forwardingKeys()
	var cur map[string]string
	err := inNetNS(r.opts.NetNS, func() error {
		var err error
		cur, err = readSysctls(keys)
		return err
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, ok := saved[k]; !ok {
			saved[k] = cur[k]
		}
	}
	if alias := formatAlias(saved); link.Attrs().Alias != alias {
		if err := h.LinkSetAlias(link, alias); err != nil {
			return fmt.Errorf("scrub: return path: alias of %s: %w", r.opts.Name, err)
		}
	}
	r.saved = saved
	var todo []string
	for _, k := range keys {
		if cur[k] != "1" {
			todo = append(todo, k)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if err := inNetNS(r.opts.NetNS, func() error { return writeSysctls(todo, "1") }); err != nil {
		return err
	}
	r.log.Info("scrub: return path forwarding enabled", "sysctls", strings.Join(todo, " "))
	return nil
}

// restoreForwarding writes back the values recorded before the first Set,
// from memory or else from alias (the tunnel's). Nothing recorded: the
// values are left alone.
func (r *Return) restoreForwarding(alias string) error {
	saved := r.saved
	if saved == nil {
		saved = parseAlias(alias)
	}
	if len(saved) == 0 {
		return nil
	}
	keys := make([]string, 0, len(saved))
	for k := range saved {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return inNetNS(r.opts.NetNS, func() error {
		cur, err := readSysctls(keys)
		if err != nil {
			return err
		}
		var errs []error
		for _, k := range keys {
			if cur[k] != saved[k] {
				errs = append(errs, writeSysctls([]string{k}, saved[k]))
			}
		}
		return errors.Join(errs...)
	})
}

func formatAlias(saved map[string]string) string {
	var b strings.Builder
	b.WriteString(aliasPrefix)
	for _, k := range []string{forward4, forward6} {
		if v, ok := saved[k]; ok {
			fmt.Fprintf(&b, " %s=%s", strings.ReplaceAll(k, "/", "."), v)
		}
	}
	return b.String()
}

// parseAlias reads what formatAlias wrote; anything else is no record.
func parseAlias(alias string) map[string]string {
	saved := map[string]string{}
	rest, ok := strings.CutPrefix(alias, aliasPrefix)
	if !ok {
		return saved
	}
	for _, f := range strings.Fields(rest) {
		k, v, ok := strings.Cut(f, "=")
		k = strings.ReplaceAll(k, ".", "/")
		if ok && (k == forward4 || k == forward6) && (v == "0" || v == "1" || v == "2") {
			saved[k] = v
		}
	}
	return saved
}

func readSysctls(keys []string) (map[string]string, error) {
	out := map[string]string{}
	for _, k := range keys {
		b, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			return nil, fmt.Errorf("scrub: return path: sysctl %s: %w", k, err)
		}
		out[k] = strings.TrimSpace(string(b))
	}
	return out, nil
}

func writeSysctls(keys []string, v string) error {
	for _, k := range keys {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("scrub: return path: sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

// inNetNS runs fn on an OS thread switched into the namespace fd (0: the
// current one): /proc/sys/net shows the namespace of the thread that reads
// it. A thread that cannot be switched back stays locked, so the runtime
// ends it with the goroutine.
func inNetNS(fd int, fn func() error) error {
	if fd == 0 {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("scrub: return path: current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(netns.NsHandle(fd)); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("scrub: return path: enter netns: %w", err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("scrub: return path: leave netns (thread discarded): %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}
