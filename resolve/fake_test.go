package resolve

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// fakeDNS is an in-process DNS server on 127.0.0.1 (UDP and TCP on one
// port) answering from a fixed set of records, like a recursive resolver
// does: the CNAME chain, then the records of its target.
type fakeDNS struct {
	addr string

	mu       sync.Mutex
	rrs      []dns.RR
	rcode    int  // answer every query with this code (0: normal)
	drop     bool // answer nothing
	truncate bool // UDP answers carry TC and no record
	oversize bool // UDP answers are not truncated to the client's EDNS size
	udp, tcp int  // queries received
}

func startFakeDNS(t *testing.T, records ...string) *fakeDNS {
	t.Helper()
	f := &fakeDNS{}
	for _, s := range records {
		f.add(s)
	}
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		_ = pc.Close()
		if i == 20 {
			t.Fatal("no port free for UDP and TCP on 127.0.0.1")
		}
	}
	f.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: f}, {Listener: ln, Handler: f}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return f
}

func (f *fakeDNS) add(s string) {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	f.rrs = append(f.rrs, rr)
}

// set replaces the records.
func (f *fakeDNS) set(records ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rrs = nil
	for _, s := range records {
		f.add(s)
	}
}

func (f *fakeDNS) with(fn func(f *fakeDNS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeDNS) counts() (udp, tcp int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.udp, f.tcp
}

func (f *fakeDNS) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, isUDP := w.RemoteAddr().(*net.UDPAddr)
	if isUDP {
		f.udp++
	} else {
		f.tcp++
	}
	if f.drop || len(r.Question) != 1 {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	switch {
	case f.rcode != 0:
		m.Rcode = f.rcode
	case f.truncate && isUDP:
		m.Truncated = true
	default:
		f.answer(r.Question[0], m)
		if isUDP && !f.oversize {
			size := dns.MinMsgSize
			if o := r.IsEdns0(); o != nil {
				size = int(o.UDPSize())
			}
			m.Truncate(size)
		}
	}
	_ = w.WriteMsg(m)
}

func (f *fakeDNS) answer(q dns.Question, m *dns.Msg) {
	name, known := q.Name, false
	for hops := 0; hops < 12; hops++ {
		next := ""
		for _, rr := range f.rrs {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) {
				continue
			}
			known = true
			if h.Rrtype == q.Qtype || h.Rrtype == dns.TypeCNAME {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
			if c, ok := rr.(*dns.CNAME); ok {
				next = c.Target
			}
		}
		if next == "" {
			break
		}
		name = next
	}
	if !known {
		m.Rcode = dns.RcodeNameError
	}
}
