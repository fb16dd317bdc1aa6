package resolve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// result is what the servers said about one name, both types together.
type result struct {
	addrs    []netip.Addr // not excluded, sorted
	excluded int          // addresses dropped by Exclude
	ttl      time.Duration
	server   string
	err      error // nil: both types answered (addresses or not)
}

// typeResult is the answer for one type.
type typeResult struct {
	addrs  []netip.Addr
	ttl    uint32 // math.MaxUint32 when there is no record
	nx     bool   // NXDOMAIN
	server string
	err    error // nil: a server answered NOERROR or NXDOMAIN
}

func (r *Resolver) query(ctx context.Context, fqdn string) result {
	if len(r.servers) == 0 {
		return r.system(ctx, fqdn)
	}
	var a, aaaa typeResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		aaaa = r.queryType(ctx, fqdn, dns.TypeAAAA)
	}()
	a = r.queryType(ctx, fqdn, dns.TypeA)
	<-done

	var res result
	var all []netip.Addr
	ttl := uint32(math.MaxUint32)
	for _, t := range []typeResult{a, aaaa} {
		all = append(all, t.addrs...)
		if len(t.addrs) > 0 {
			ttl = min(ttl, t.ttl)
			if res.server == "" {
				res.server = t.server
			}
		}
	}
	res.ttl = time.Duration(ttl) * time.Second
	for _, ad := range all {
		if r.excluded(ad) {
			res.excluded++
		} else {
			res.addrs = append(res.addrs, ad)
		}
	}
	res.addrs = bound(res.addrs)
	switch {
	case a.err != nil && aaaa.err != nil:
		res.err = fmt.Errorf("%w: %w", ErrUnreachable, oneLine(a.err, aaaa.err))
	case len(all) > 0:
		if res.err = oneLine(a.err, aaaa.err); res.err != nil {
			res.err = fmt.Errorf("%w: %w", ErrUnreachable, res.err)
		}
	case a.nx || aaaa.nx:
		server := a.server
		if !a.nx {
			server = aaaa.server
		}
		res.err = fmt.Errorf("%w (from %s)", ErrNotFound, server)
	case a.err != nil || aaaa.err != nil:
		res.err = fmt.Errorf("%w: %w", ErrUnreachable, oneLine(a.err, aaaa.err))
	}
	return res
}

// queryType asks the servers in order for fqdn's qtype records until one
// answers NOERROR or NXDOMAIN.
func (r *Resolver) queryType(ctx context.Context, fqdn string, qtype uint16) typeResult {
	var errs []error
	for _, s := range r.servers {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", s, dns.TypeToString[qtype], ctx.Err()))
			break
		}
		m, err := r.ask(ctx, s, fqdn, qtype)
		if err == nil {
			switch m.Rcode {
			case dns.RcodeSuccess:
				addrs, ttl, cerr := chase(m, fqdn, qtype)
				if cerr == nil {
					return typeResult{addrs: addrs, ttl: ttl, server: s}
				}
				err = cerr
			case dns.RcodeNameError:
				return typeResult{nx: true, ttl: math.MaxUint32, server: s}
			default:
				err = fmt.Errorf("answered %s", dns.RcodeToString[m.Rcode])
			}
		}
		errs = append(errs, fmt.Errorf("%s %s: %w", s, dns.TypeToString[qtype], err))
	}
	return typeResult{ttl: math.MaxUint32, err: oneLine(errs...)}
}

// ask sends one query over UDP, and again over TCP if the answer is
// truncated.
func (r *Resolver) ask(ctx context.Context, server, fqdn string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(fqdn, qtype)
	q.RecursionDesired = true
	q.SetEdns0(udpSize, false)
	var m *dns.Msg
	var err error
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: r.o.Timeout, UDPSize: udpSize}
		cctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
		m, _, err = c.ExchangeContext(cctx, q, server)
		cancel()
		var ne net.Error
		if err != nil && network == "udp" && !errors.As(err, &ne) && ctx.Err() == nil {
			// A malformed or oversized datagram (a server that does not
			// truncate to our EDNS size): ask over TCP.
			continue
		}
		if err != nil {
			return nil, err
		}
		if !m.Truncated {
			break
		}
	}
	if m == nil || m.Truncated {
		return nil, errors.New("answer truncated over TCP")
	}
	if len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, fqdn) || m.Question[0].Qtype != qtype {
		return nil, errors.New("the answer is for another question")
	}
	return m, nil
}

// chase returns the qtype addresses of qname in m's answer section,
// following CNAMEs (at most MaxCNAME), and the smallest TTL of the RRs
// used (RFC 2181 §8). A chain ending without addresses is no address.
func chase(m *dns.Msg, qname string, qtype uint16) ([]netip.Addr, uint32, error) {
	cur, ttl := qname, uint32(math.MaxUint32)
	for links := 0; ; links++ {
		var addrs []netip.Addr
		next, rrTTL, cnameTTL := "", uint32(math.MaxUint32), uint32(0)
		for _, rr := range m.Answer {
			h := rr.Header()
			if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, cur) {
				continue
			}
			var a netip.Addr
			switch rr := rr.(type) {
			case *dns.A:
				if qtype == dns.TypeA {
					a, _ = netip.AddrFromSlice(rr.A.To4())
				}
			case *dns.AAAA:
				if qtype == dns.TypeAAAA {
					a, _ = netip.AddrFromSlice(rr.AAAA.To16())
				}
			case *dns.CNAME:
				next, cnameTTL = dns.CanonicalName(rr.Target), h.Ttl
			}
			if a.IsValid() {
				addrs = append(addrs, a.Unmap())
				rrTTL = min(rrTTL, h.Ttl)
			}
		}
		if len(addrs) > 0 {
			return bound(addrs), min(ttl, rrTTL), nil
		}
		if next == "" {
			return nil, math.MaxUint32, nil
		}
		if links == MaxCNAME {
			return nil, 0, fmt.Errorf("CNAME chain of %s longer than %d links", qname, MaxCNAME)
		}
		ttl, cur = min(ttl, cnameTTL), next
	}
}

// system resolves with Go's resolver, which gives no TTL: SystemTTL.
func (r *Resolver) system(ctx context.Context, fqdn string) result {
	ctx, cancel := context.WithTimeout(ctx, 2*r.o.Timeout)
	defer cancel()
	ips, err := r.o.System.LookupNetIP(ctx, "ip", fqdn)
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return result{err: fmt.Errorf("%w (system resolver)", ErrNotFound)}
	}
	if err != nil {
		return result{err: fmt.Errorf("%w: system resolver: %v", ErrUnreachable, err)}
	}
	res := result{ttl: r.o.SystemTTL, server: "system"}
	for _, a := range ips {
		a = a.Unmap().WithZone("")
		if r.excluded(a) {
			res.excluded++
		} else {
			res.addrs = append(res.addrs, a)
		}
	}
	res.addrs = bound(res.addrs)
	return res
}

// bound sorts and deduplicates addrs and keeps at most MaxAddrs.
func bound(addrs []netip.Addr) []netip.Addr {
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	if len(addrs) > MaxAddrs {
		addrs = addrs[:MaxAddrs]
	}
	return addrs
}

// oneLine joins the non-nil errs with "; " (one log line), or is nil.
func oneLine(errs ...error) error {
	var msgs []string
	for _, e := range errs {
		if e != nil {
			msgs = append(msgs, e.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}
