package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// rrsets is the A and AAAA RRsets of one name, as stored and compared.
type rrsets struct {
	A       []netip.Addr `json:"a,omitempty"`
	AAAA    []netip.Addr `json:"aaaa,omitempty"`
	TTLA    uint32       `json:"ttl-a,omitempty"`
	TTLAAAA uint32       `json:"ttl-aaaa,omitempty"`
}

// scrubSet is the RRsets that put addrs in place, with ttl.
func scrubSet(addrs []netip.Addr, ttl uint32) rrsets {
	var s rrsets
	for _, a := range addrs {
		if a.Unmap().Is4() {
			s.A = append(s.A, a.Unmap())
			s.TTLA = ttl
		} else {
			s.AAAA = append(s.AAAA, a)
			s.TTLAAAA = ttl
		}
	}
	return s
}

func (s rrsets) empty() bool { return len(s.A)+len(s.AAAA) == 0 }

// same compares the addresses as sets, ignoring TTLs.
func (s rrsets) same(o rrsets) bool {
	return sameSet(s.A, o.A) && sameSet(s.AAAA, o.AAAA)
}

func sameSet(a, b []netip.Addr) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.SortFunc(x, netip.Addr.Compare)
	slices.SortFunc(y, netip.Addr.Compare)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

func (s rrsets) String() string {
	if s.empty() {
		return "no address"
	}
	var parts []string
	for _, a := range append(slices.Clone(s.A), s.AAAA...) {
		parts = append(parts, a.String())
	}
	return strings.Join(parts, ", ")
}

// records returns the RRs of s owned by name.
func (s rrsets) records(name string) []dns.RR {
	var out []dns.RR
	for _, a := range s.A {
		out = append(out, &dns.A{Hdr: hdr(name, dns.TypeA, s.TTLA), A: a.AsSlice()})
	}
	for _, a := range s.AAAA {
		out = append(out, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, s.TTLAAAA), AAAA: a.AsSlice()})
	}
	return out
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// types are the record types the backend manages, in a fixed order.
var types = []uint16{dns.TypeA, dns.TypeAAAA}

// get returns the addresses of type t.
func (s rrsets) get(t uint16) []netip.Addr {
	if t == dns.TypeA {
		return s.A
	}
	return s.AAAA
}

// only returns s limited to the types ts.
func (s rrsets) only(ts ...uint16) rrsets {
	var o rrsets
	for _, t := range ts {
		switch t {
		case dns.TypeA:
			o.A, o.TTLA = s.A, s.TTLA
		case dns.TypeAAAA:
			o.AAAA, o.TTLAAAA = s.AAAA, s.TTLAAAA
		}
	}
	return o
}

// updateMsg builds the RFC 2136 update that swaps name's RRsets of the
// given types (A and AAAA when none is given) from `from` to `to`, guarded
// by prerequisites: each RRset must be exactly as in `from`
// (value-dependent "RRset exists", §2.4.2), or absent when `from` has none
// of that type ("RRset does not exist", §2.4.3). RRsets of other types
// are neither checked nor touched.
func updateMsg(zone, name string, from, to rrsets, ts ...uint16) *dns.Msg {
	if len(ts) == 0 {
		ts = types
	}
	from, to = from.only(ts...), to.only(ts...)
	m := new(dns.Msg)
	m.SetUpdate(zone)
	del := make([]dns.RR, 0, len(ts))
	for _, t := range ts {
		if len(from.get(t)) == 0 {
			m.RRsetNotUsed([]dns.RR{&dns.ANY{Hdr: hdr(name, t, 0)}})
		}
		del = append(del, &dns.ANY{Hdr: hdr(name, t, 0)})
	}
	if rrs := from.records(name); len(rrs) > 0 {
		m.Used(rrs)
	}
	m.RemoveRRset(del)
	if rrs := to.records(name); len(rrs) > 0 {
		m.Insert(rrs)
	}
	return m
}

// read returns name's A and AAAA RRsets as the zone's primary has them.
func (b *Backend) read(ctx context.Context, z Zone, name string) (rrsets, error) {
	var s rrsets
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		q := new(dns.Msg)
		q.SetQuestion(name, qt)
		q.RecursionDesired = false
		r, err := b.exchange(ctx, z, q)
		if err == nil && r.Rcode == dns.RcodeSuccess && !r.Authoritative {
			err = fmt.Errorf("%w: the server is not authoritative for the zone", ErrRefused)
		}
		if err == nil && r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			err = hint(r.Rcode, z.KeyName)
		}
		if err != nil {
			b.stats.readFailed(z.Name)
			return rrsets{}, newError("read", name, z, r, err)
		}
		for _, rr := range r.Answer {
			if !strings.EqualFold(rr.Header().Name, name) {
				continue
			}
			switch rr := rr.(type) {
			case *dns.A:
				a, _ := netip.AddrFromSlice(rr.A.To4())
				s.A, s.TTLA = append(s.A, a), rr.Hdr.Ttl
			case *dns.AAAA:
				a, _ := netip.AddrFromSlice(rr.AAAA.To16())
				s.AAAA, s.TTLAAAA = append(s.AAAA, a), rr.Hdr.Ttl
			case *dns.CNAME:
				return rrsets{}, newError("read", name, z, nil, fmt.Errorf("%w: it is a CNAME to %s (divert the target instead)", ErrNoAddress, rr.Target))
			}
		}
	}
	return s, nil
}

// swap replaces name's RRsets of the types ts (A and AAAA when none is
// given) `from` by `to` with one guarded update. If the prerequisite fails
// it reads the name again: already `to` (an earlier attempt landed) is
// success, anything else is ErrConflict.
func (b *Backend) swap(ctx context.Context, z Zone, name, op string, from, to rrsets, ts ...uint16) (err error) {
	defer func() { b.stats.count(z.Name, err) }()
	if len(ts) == 0 {
		ts = types
	}
	r, err := b.exchange(ctx, z, updateMsg(z.Name, name, from, to, ts...))
	if err != nil {
		return newError(op, name, z, r, err)
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
		return nil
	case dns.RcodeNXRrset, dns.RcodeYXRrset, dns.RcodeNameError:
		cur, rerr := b.read(ctx, z, name)
		if rerr != nil {
			return errors.Join(newError(op, name, z, r, errors.New("prerequisite failed and the records could not be read back")), rerr)
		}
		cur, from, to = cur.only(ts...), from.only(ts...), to.only(ts...)
		if cur.same(to) {
			return nil
		}
		return newError(op, name, z, r, fmt.Errorf("%w: the name has %s, expected %s (wanted to put %s)", ErrConflict, cur, from, to))
	}
	return newError(op, name, z, r, hint(r.Rcode, z.KeyName))
}

// exchange sends m to the zone's primary over TCP, signed with the zone's
// TSIG key (HMAC-SHA256), and retries timeouts, network errors and
// SERVFAIL with exponential backoff. It returns the answer and its code;
// err is set for failures the caller cannot act on (refusals, TSIG errors,
// no answer). NOERROR, NXDOMAIN, YXDOMAIN, NXRRSET and YXRRSET are answers.
func (b *Backend) exchange(ctx context.Context, z Zone, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: "tcp", Timeout: b.cfg.Timeout, TsigSecret: map[string]string{z.KeyName: z.Secret}}
	delay := b.cfg.Backoff
	var lastErr error
	var lastR *dns.Msg
	attempts := 0
	for attempts <= b.cfg.Retries {
		if attempts > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return lastR, fmt.Errorf("%w: gave up after %d attempt(s): %v (last: %v)", ErrUnreachable, attempts, ctx.Err(), lastErr)
			case <-t.C:
			}
			delay *= 2
		}
		attempts++
		q := m.Copy()
		q.Id = dns.Id()
		q.SetTsig(z.KeyName, dns.HmacSHA256, 300, time.Now().Unix())
		cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
		r, _, err := c.ExchangeContext(cctx, q, z.Primary)
		cancel()
		err, retry := classify(r, err, z.KeyName)
		if !retry {
			return r, err
		}
		lastErr, lastR = err, r
		if ctx.Err() != nil {
			break
		}
	}
	return lastR, fmt.Errorf("%w: gave up after %d attempt(s) (last: %v)", ErrUnreachable, attempts, lastErr)
}

// classify turns an exchange result into an error (nil for an answer the
// caller handles) and whether to retry.
func classify(r *dns.Msg, err error, keyName string) (error, bool) {
	if r != nil {
		if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
			return hint(int(t.Error), keyName), false
		}
	}
	if err != nil {
		for _, e := range []error{dns.ErrAuth, dns.ErrSig, dns.ErrTime, dns.ErrSecret, dns.ErrKeyAlg} {
			if errors.Is(err, e) {
				return fmt.Errorf("%w: the reply does not verify (%v): wrong secret for key %s?", ErrTSIG, err, keyName), false
			}
		}
		return err, true
	}
	switch r.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError, dns.RcodeNXRrset, dns.RcodeYXRrset, dns.RcodeYXDomain:
		return nil, false
	case dns.RcodeServerFailure:
		return hint(r.Rcode, keyName), true
	}
	return hint(r.Rcode, keyName), false
}
