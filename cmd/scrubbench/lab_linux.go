//go:build linux

package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Names of the bench's namespaces and veth. The namespaces are named
// nsPrefix<pid>-snd and nsPrefix<pid>-scr; the veth ends exist only inside
// them.
const (
	nsPrefix   = "sbn-"
	sendIface  = "sbn-a"
	scrubIface = "sbn-b"
)

var (
	sendAddr  = netip.MustParsePrefix("198.51.100.2/24")
	scrubAddr = netip.MustParsePrefix("198.51.100.1/24")
)

// lab is the sender's and the scrubber's namespaces joined by the veth.
type lab struct {
	names   []string         // named namespaces to delete
	handles []netns.NsHandle // open handles, closed by close
	send    netns.NsHandle
	scrub   netns.NsHandle
	// scrubName is the scrubber's namespace, for `ip netns exec`.
	scrubName string
	// peerMAC is the scrubber end's address, the frames' destination.
	peerMAC net.HardwareAddr
}

// newLab builds the lab. On error, what was built is removed again.
func newLab() (l *lab, err error) {
	removeStale()
	l = &lab{}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.close())
			l = nil
		}
	}()
	pid := os.Getpid()
	if l.send, err = l.newNS(fmt.Sprintf("%s%d-snd", nsPrefix, pid)); err != nil {
		return l, err
	}
	l.scrubName = fmt.Sprintf("%s%d-scr", nsPrefix, pid)
	if l.scrub, err = l.newNS(l.scrubName); err != nil {
		return l, err
	}
	hs, err := netlink.NewHandleAt(l.send)
	if err != nil {
		return l, fmt.Errorf("netlink: %w", err)
	}
	defer hs.Close()
	hr, err := netlink.NewHandleAt(l.scrub)
	if err != nil {
		return l, fmt.Errorf("netlink: %w", err)
	}
	defer hr.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: sendIface}, PeerName: scrubIface, PeerNamespace: netlink.NsFd(int(l.scrub))}
	if err := hs.LinkAdd(veth); err != nil {
		return l, fmt.Errorf("veth %s/%s: %w", sendIface, scrubIface, err)
	}
	for _, x := range []struct {
		h     *netlink.Handle
		iface string
		addr  netip.Prefix
	}{{hs, sendIface, sendAddr}, {hr, scrubIface, scrubAddr}} {
		if err := linkUp(x.h, x.iface, x.addr); err != nil {
			return l, err
		}
	}
	for _, x := range []struct {
		h     *netlink.Handle
		iface string
	}{{hs, sendIface}, {hr, scrubIface}} {
		if err := waitUp(x.h, x.iface); err != nil {
			return l, err
		}
	}
	peer, err := hr.LinkByName(scrubIface)
	if err != nil {
		return l, fmt.Errorf("%s: %w", scrubIface, err)
	}
	l.peerMAC = peer.Attrs().HardwareAddr
	return l, nil
}

// newNS creates a named namespace and puts the thread back in its own.
func (l *lab) newNS(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return -1, fmt.Errorf("netns: %w", err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		panic(fmt.Sprintf("scrubbench: thread left in another namespace: %v", serr))
	}
	if err != nil {
		return -1, fmt.Errorf("netns %s: %w", name, err)
	}
	l.names = append(l.names, name)
	l.handles = append(l.handles, ns)
	return ns, nil
}

// close deletes the namespaces, and with them the veth and the tables in
// them. It is idempotent.
func (l *lab) close() error {
	var errs []error
	for _, h := range l.handles {
		errs = append(errs, h.Close())
	}
	for _, name := range l.names {
		if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("delete netns %s: %w", name, err))
		}
	}
	l.handles, l.names = nil, nil
	return errors.Join(errs...)
}

// removeStale deletes namespaces left by a bench that was killed: those
// whose process is gone.
func removeStale() {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidStr, suffix, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || (suffix != "snd" && suffix != "scr") || pid == os.Getpid() {
			continue
		}
		if !alive(pid) {
			_ = netns.DeleteNamed(e.Name())
		}
	}
}

// alive reports whether process pid runs: it exists and is not a zombie
// (a killed bench whose parent has not reaped it yet).
func alive(pid int) bool {
	if unix.Kill(pid, 0) == unix.ESRCH {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

func linkUp(h *netlink.Handle, iface string, addr netip.Prefix) error {
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("%s: %w", iface, err)
	}
	ipn := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipn}); err != nil {
		return fmt.Errorf("%s %v: %w", iface, addr, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", iface, err)
	}
	return nil
}

// waitUp waits for the link's carrier: until then the device refuses frames.
func waitUp(h *netlink.Handle, iface string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		link, err := h.LinkByName(iface)
		if err != nil {
			return fmt.Errorf("%s: %w", iface, err)
		}
		if link.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not up after 5s: %v", iface, link.Attrs().OperState)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
