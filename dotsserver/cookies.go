package dotsserver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"net/netip"
	"sync"
	"time"
)

// cookieRotation is how often the cookie secret changes. A cookie made
// under the previous secret is still accepted, so a cookie lives between
// one and two periods: long enough for a peer's round trip and resends,
// short enough that one collected from a source's address is soon useless.
const cookieRotation = 30 * time.Second

// cookieLen is the length of a cookie: a whole HMAC-SHA256.
const cookieLen = sha256.Size

// cookieJar makes and checks the stateless DTLS cookies of RFC 6347
// §4.2.1: Cookie = HMAC(Secret, Client-IP, Client-Parameters), where the
// parameters are those a client must repeat in the ClientHello with the
// cookie (version, random, session_id, cipher_suites,
// compression_methods) and the address includes the port.
type cookieJar struct {
	now func() time.Time

	mu        sync.Mutex
	cur, prev hash.Hash // HMACs under the current and the previous secret
	rotated   time.Time
}

func newCookieJar(now func() time.Time) (*cookieJar, error) {
	j := &cookieJar{now: now}
	if err := j.rotateLocked(now()); err != nil {
		return nil, err
	}
	j.prev = j.cur
	return j, nil
}

func (j *cookieJar) rotateLocked(now time.Time) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("dtls cookie secret: %w", err)
	}
	j.prev, j.cur, j.rotated = j.cur, hmac.New(sha256.New, secret), now
	return nil
}

// make returns the cookie for a ClientHello from a source.
func (j *cookieJar) make(from netip.AddrPort, h dtlsHello) []byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	if now := j.now(); now.Sub(j.rotated) >= cookieRotation {
		if err := j.rotateLocked(now); err != nil {
			j.rotated = now // keep the secret; try again next period
		}
	}
	return sum(j.cur, from, h)
}

// valid reports whether a ClientHello carries the cookie made for it from
// the same source under the current or the previous secret.
func (j *cookieJar) valid(from netip.AddrPort, h dtlsHello) bool {
	if len(h.cookie) != cookieLen || h.offer == nil {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	// make rotates lazily, so the current secret may be older than one
	// period; a cookie is accepted for at most two.
	age := j.now().Sub(j.rotated)
	return (age < 2*cookieRotation && hmac.Equal(h.cookie, sum(j.cur, from, h))) ||
		(age < cookieRotation && hmac.Equal(h.cookie, sum(j.prev, from, h)))
}

func sum(m hash.Hash, from netip.AddrPort, h dtlsHello) []byte {
	m.Reset()
	a := from.Addr().Unmap().As16()
	m.Write(a[:])
	m.Write([]byte{byte(from.Port() >> 8), byte(from.Port())})
	m.Write(h.fixed)
	m.Write(h.offer)
	return m.Sum(nil)
}
