package dns

import (
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const (
	testKey    = "dots-key."
	testSecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYg==" // base64 of 32 bytes
)

// fakePrimary is an in-process authoritative server for svc.example. and
// other.example. It accepts TSIG-signed RFC 2136 updates for the zones in
// updatable, checks prerequisites like BIND does, and records every update.
type fakePrimary struct {
	addr string

	mu          sync.Mutex
	updatable   map[string]bool
	rrs         map[string][]dns.RR // owner name -> RRs
	updates     []*dns.Msg          // updates received (after TSIG verification)
	unsigned    int                 // requests without a valid TSIG
	failUpdates int                 // answer SERVFAIL to the next n updates
	hangUpdates int                 // do not answer (nor apply) the next n updates
	dropReplies int                 // apply the next n updates but send no reply
	// beforeUpdate, if set, runs (with mu held) before the n-th update
	// (from 1) is applied: someone else changing the zone meanwhile.
	beforeUpdate func(f *fakePrimary, n int)
}

func startFake(t *testing.T) *fakePrimary {
	t.Helper()
	f := &fakePrimary{updatable: map[string]bool{"svc.example.": true}, rrs: map[string][]dns.RR{}}
	for _, s := range []string{
		"svc.example. 3600 IN SOA ns.svc.example. host.svc.example. 1 3600 600 86400 60",
		"www.svc.example. 300 IN A 203.0.113.10",
		"www.svc.example. 300 IN AAAA 2001:db8:6401::10",
		"api.svc.example. 300 IN A 203.0.113.11",
		"alias.svc.example. 300 IN CNAME www.svc.example.",
		"other.example. 3600 IN SOA ns.other.example. host.other.example. 1 3600 600 86400 60",
		"www.other.example. 300 IN A 198.51.100.20",
	} {
		f.add(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	started := make(chan struct{})
	srv := &dns.Server{Listener: ln, Net: "tcp", Handler: f, TsigSecret: map[string]string{testKey: testSecret},
		NotifyStartedFunc: func() { close(started) },
		// miekg's DefaultMsgAcceptFunc answers NOTIMP to UPDATE.
		MsgAcceptFunc: func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return f
}

func (f *fakePrimary) add(s string) {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	name := dns.CanonicalName(rr.Header().Name)
	f.rrs[name] = append(f.rrs[name], rr)
}

// set replaces name's RRs of the type of rrs (an operator's manual change).
func (f *fakePrimary) set(name string, typ uint16, rrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rrs[name] = slices.DeleteFunc(f.rrs[name], func(rr dns.RR) bool { return rr.Header().Rrtype == typ })
	for _, s := range rrs {
		f.add(s)
	}
}

// addrs returns name's A and AAAA values, sorted ("203.0.113.10 2001:…").
func (f *fakePrimary) addrs(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, rr := range f.rrs[name] {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (f *fakePrimary) updateCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.updates)
}

func (f *fakePrimary) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	if r.IsTsig() == nil || w.TsigStatus() != nil {
		f.unsigned++
		m.Rcode = dns.RcodeNotAuth
		_ = w.WriteMsg(m)
		return
	}
	if r.Opcode == dns.OpcodeUpdate {
		f.updates = append(f.updates, r.Copy())
		switch {
		case f.hangUpdates > 0:
			f.hangUpdates--
			return
		case f.failUpdates > 0:
			f.failUpdates--
			m.Rcode = dns.RcodeServerFailure
		case !f.updatable[r.Question[0].Name]:
			m.Rcode = dns.RcodeRefused
		default:
			if f.beforeUpdate != nil {
				f.beforeUpdate(f, len(f.updates))
			}
			m.Rcode = f.update(r)
			if f.dropReplies > 0 && m.Rcode == dns.RcodeSuccess {
				f.dropReplies--
				return
			}
		}
	} else {
		f.answer(r.Question[0], m)
	}
	m.SetTsig(testKey, dns.HmacSHA256, 300, time.Now().Unix())
	_ = w.WriteMsg(m)
}

func (f *fakePrimary) answer(q dns.Question, m *dns.Msg) {
	name := dns.CanonicalName(q.Name)
	if !dns.IsSubDomain("svc.example.", name) && !dns.IsSubDomain("other.example.", name) {
		m.Rcode = dns.RcodeRefused
		return
	}
	m.Authoritative = true
	rrs, ok := f.rrs[name]
	if !ok {
		m.Rcode = dns.RcodeNameError
		return
	}
	for _, rr := range rrs {
		if t := rr.Header().Rrtype; t == q.Qtype || t == dns.TypeCNAME {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
}

// update applies r (prerequisites, then the update section) like RFC 2136
// §3.2 and §3.4 say, and returns the response code.
func (f *fakePrimary) update(r *dns.Msg) int {
	values := map[[2]string][]string{} // value-dependent prerequisites
	for _, p := range r.Answer {
		h := p.Header()
		name := dns.CanonicalName(h.Name)
		have := f.values(name, h.Rrtype)
		switch h.Class {
		case dns.ClassNONE:
			if len(have) > 0 {
				return dns.RcodeYXRrset
			}
		case dns.ClassANY:
			if len(have) == 0 {
				return dns.RcodeNXRrset
			}
		default:
			if h.Ttl != 0 {
				return dns.RcodeFormatError
			}
			k := [2]string{name, dns.TypeToString[h.Rrtype]}
			values[k] = append(values[k], rdata(p))
		}
	}
	for k, want := range values {
		sort.Strings(want)
		if !slices.Equal(want, f.values(k[0], dns.StringToType[k[1]])) {
			return dns.RcodeNXRrset
		}
	}
	for _, u := range r.Ns {
		h := u.Header()
		name := dns.CanonicalName(h.Name)
		switch h.Class {
		case dns.ClassANY:
			f.rrs[name] = slices.DeleteFunc(f.rrs[name], func(rr dns.RR) bool { return rr.Header().Rrtype == h.Rrtype })
		case dns.ClassINET:
			f.rrs[name] = append(f.rrs[name], dns.Copy(u))
		default:
			return dns.RcodeNotImplemented
		}
		if len(f.rrs[name]) == 0 {
			delete(f.rrs, name)
		}
	}
	return dns.RcodeSuccess
}

func (f *fakePrimary) values(name string, t uint16) []string {
	var out []string
	for _, rr := range f.rrs[name] {
		if rr.Header().Rrtype == t {
			out = append(out, rdata(rr))
		}
	}
	sort.Strings(out)
	return out
}

func rdata(rr dns.RR) string {
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}
