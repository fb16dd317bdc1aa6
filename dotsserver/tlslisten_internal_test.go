package dotsserver

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeListener hands out a scripted sequence of accept results.
type fakeListener struct {
	mu     sync.Mutex
	script []any // net.Conn or error; after it, net.ErrClosed
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.script) == 0 {
		return nil, net.ErrClosed
	}
	next := f.script[0]
	f.script = f.script[1:]
	if c, ok := next.(net.Conn); ok {
		return c, nil
	}
	return nil, next.(error)
}

func (f *fakeListener) Close() error   { return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept", syscall.EMFILE)}
}

// TestAcceptBackoff: an accept that fails for want of descriptors is
// retried after 5 ms doubling to 1 s (net/http's Server), not at once, and
// the pause starts over after an accept succeeds.
func TestAcceptBackoff(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	ms := time.Millisecond
	tests := []struct {
		name   string
		script []any
		want   []time.Duration
	}{
		{"doubling to one second", slices.Repeat([]any{emfile()}, 12),
			[]time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second, time.Second, time.Second}},
		{"ENFILE and ECONNABORTED too", []any{&net.OpError{Op: "accept", Err: syscall.ENFILE}, &net.OpError{Op: "accept", Err: syscall.ECONNABORTED}},
			[]time.Duration{5 * ms, 10 * ms}},
		{"reset by a success", []any{emfile(), emfile(), server, emfile()}, []time.Duration{5 * ms, 10 * ms, 5 * ms}},
		{"other errors end the loop", []any{io.ErrUnexpectedEOF, emfile()}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var slept []time.Duration
			limits := Limits{TLSHandshakeTimeout: 50 * time.Millisecond}.withDefaults()
			rlog := newRateLog(slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now, time.Second)
			l := newTLSListener(&fakeListener{script: tc.script}, &tls.Config{}, limits, rlog, func(c *tls.Conn) net.Conn { return c })
			l.sleep = func(d time.Duration, _ <-chan struct{}) bool { slept = append(slept, d); return true }
			l.acceptLoop() // returns at the end of the script
			l.Close()
			if !slices.Equal(slept, tc.want) {
				t.Fatalf("pauses %v, want %v", slept, tc.want)
			}
		})
	}
}
