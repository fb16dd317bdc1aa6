package dotsserver

import (
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	coapNet "github.com/plgd-dev/go-coap/v3/net"
)

// tlsListener accepts TCP connections and completes their TLS handshakes
// before go-coap sees them, so that what a peer can hold without a
// certificate is bounded:
//
//   - a handshake must complete within Limits.TLSHandshakeTimeout of the
//     accept, else the connection is closed;
//   - at most Limits.MaxUnauthenticatedConns connections may be in their
//     handshake; at the bound the oldest is closed. Closing the oldest
//     rather than refusing the newest keeps idle connections from locking
//     legitimate clients out: a client completes its handshake in a few
//     milliseconds, an idle connection only ages;
//   - an accept that fails for want of resources (EMFILE, ENFILE, ...) is
//     retried after a pause of 5 ms doubling to 1 s, as net/http's Server
//     does, instead of at once.
//
// Each completed connection is wrapped (frameGuard) and handed out by
// AcceptWithContext.
type tlsListener struct {
	ln     net.Listener
	cfg    *tls.Config
	limits Limits
	rlog   *rateLog
	wrap   func(*tls.Conn) net.Conn
	sleep  func(time.Duration, <-chan struct{}) bool // waits, false if closed

	ctx     context.Context
	cancel  context.CancelFunc
	ready   chan net.Conn
	wg      sync.WaitGroup
	closing sync.Once

	mu      sync.Mutex
	pending *list.List // *tls.Conn in their handshake, oldest first
	tlsCounters
}

func newTLSListener(ln net.Listener, cfg *tls.Config, limits Limits, rlog *rateLog, wrap func(*tls.Conn) net.Conn) *tlsListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &tlsListener{ln: ln, cfg: cfg, limits: limits, rlog: rlog, wrap: wrap, sleep: sleepOrDone,
		ctx: ctx, cancel: cancel, ready: make(chan net.Conn), pending: list.New()}
	return l
}

// start runs the accept loop.
func (l *tlsListener) start() {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.acceptLoop()
	}()
}

func sleepOrDone(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// acceptRetryable tells accept errors that pass: a lack of descriptors or
// memory, or a connection aborted before it was accepted.
func acceptRetryable(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// nextAcceptDelay is net/http's accept backoff: 5 ms, doubling, at most 1 s.
func nextAcceptDelay(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}

func (l *tlsListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil || !acceptRetryable(err) {
				l.cancel()
				return
			}
			delay = nextAcceptDelay(delay)
			l.rlog.warn("accept", "TLS listener cannot accept: retrying", "addr", l.ln.Addr().String(), "err", err, "retry-in", delay)
			if !l.sleep(delay, l.ctx.Done()) {
				return
			}
			continue
		}
		delay = 0
		l.handshake(c)
	}
}

// handshake tracks c as unauthenticated and completes its TLS handshake
// on its own goroutine.
func (l *tlsListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.cfg)
	l.mu.Lock()
	e := l.pending.PushBack(tc)
	var evict *tls.Conn
	if l.pending.Len() > l.limits.MaxUnauthenticatedConns {
		evict = l.pending.Remove(l.pending.Front()).(*tls.Conn)
	}
	l.mu.Unlock()
	if evict != nil {
		l.rlog.warn("unauthenticated-cap", "too many TLS connections without a completed handshake: closing the oldest",
			"limit", l.limits.MaxUnauthenticatedConns, "closed", evict.RemoteAddr().String())
		_ = evict.Close()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(l.ctx, l.limits.TLSHandshakeTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		l.mu.Lock()
		l.pending.Remove(e) // a no-op if it was evicted
		l.mu.Unlock()
		if err != nil {
			l.failed.Add(1)
			_ = tc.Close()
			return
		}
		l.completed.Add(1)
		select {
		case l.ready <- l.wrap(tc):
		case <-l.ctx.Done():
			_ = tc.Close()
		}
	}()
}

// AcceptWithContext returns the next connection with a completed
// handshake (go-coap's tcp server Listener).
func (l *tlsListener) AcceptWithContext(ctx context.Context) (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.ctx.Done():
		return nil, coapNet.ErrListenerIsClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("accept: %w", ctx.Err())
	}
}

// Addr is the bound address.
func (l *tlsListener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting, closes the connections still in their handshake
// and waits for the listener's goroutines.
func (l *tlsListener) Close() error {
	var err error
	l.closing.Do(func() {
		l.cancel()
		err = l.ln.Close()
		l.mu.Lock()
		for e := l.pending.Front(); e != nil; e = e.Next() {
			_ = e.Value.(*tls.Conn).Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return err
}
