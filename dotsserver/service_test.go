package dotsserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/divert"
	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/service/servicetest"
)

// coapDriver runs the service's lifecycle table over a real DTLS signal
// channel, with the server on a fake clock.
type coapDriver struct {
	c   *dotsclient.Client
	clk *dotstest.Clock
}

func (d coapDriver) Put(t *testing.T, mid uint32, sc dots.Scope, efficacy bool) (dots.Code, *dots.Scope) {
	var r *dotsclient.Response
	var err error
	if efficacy {
		r, err = d.c.Efficacy(ctx(t), mid, sc, dots.AttackUnderAttack)
	} else {
		r, err = d.c.Mitigate(ctx(t), mid, sc)
	}
	return d.answer(t, r, err)
}

func (d coapDriver) answer(t *testing.T, r *dotsclient.Response, err error) (dots.Code, *dots.Scope) {
	t.Helper()
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	if r.Code >= dots.BadRequest && r.Diag == "" && r.Body == nil {
		t.Fatalf("%s without a diagnostic", r.Code)
	}
	if r.Body != nil && r.Body.MitigationScope != nil && len(r.Body.MitigationScope.Scope) == 1 {
		return r.Code, &r.Body.MitigationScope.Scope[0]
	}
	return r.Code, nil
}

func (d coapDriver) Get(t *testing.T, mid uint32) (dots.Code, *dots.Scope) {
	r, err := d.c.Status(ctx(t), dots.Ptr(mid), "")
	return d.answer(t, r, err)
}

func (d coapDriver) Delete(t *testing.T, mid uint32) dots.Code {
	r, err := d.c.Withdraw(ctx(t), mid)
	code, _ := d.answer(t, r, err)
	return code
}

func (d coapDriver) Advance(dur time.Duration) { d.clk.Advance(dur) }

// TestLifecycleThroughSignalChannel: the same table as the service's own
// test, through CoAP over DTLS.
func TestLifecycleThroughSignalChannel(t *testing.T) {
	clk := dotstest.NewClock()
	e := newEnv(t, "127.0.0.1:0", clk.Install)
	servicetest.Run(t, coapDriver{c: e.client(t, "alpha", "dtls"), clk: clk})
}

// panicky is a backend whose policy check panics: a handler bug.
type panicky struct{}

func (panicky) Name() string { return "panicky" }
func (panicky) Apply(context.Context, divert.Diversion) (divert.Applied, error) {
	return divert.Applied{}, nil
}
func (panicky) Withdraw(context.Context, divert.Key) error { return nil }
func (panicky) Check(divert.Diversion) error {
	var m map[string]int
	m["x"]++ // assignment to a nil map: a runtime panic
	return nil
}

// A handler that panics answers 5.00 with a short diagnostic (no internal
// text), and the server goes on serving.
func TestHandlerPanicAnswers500(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", func(o *dotsserver.Options) { o.Backends = []divert.Diverter{panicky{}} })
	c := e.client(t, "alpha", "dtls")
	r, err := c.Mitigate(ctx(t), 1, scope("203.0.113.10/32", 3600))
	if err != nil {
		t.Fatalf("no answer to a request whose handler panicked: %v", err)
	}
	if r.Code != dots.InternalServerError || r.Diag == "" {
		t.Fatalf("answer %s %q, want 5.00 with a diagnostic", r.Code, r.Diag)
	}
	if strings.Contains(r.Diag, "nil map") || strings.Contains(r.Diag, ".go") || strings.Contains(r.Diag, "goroutine") {
		t.Fatalf("internal text in the diagnostic: %q", r.Diag)
	}
	expect(t, dots.NotFound)(c.Status(ctx(t), nil, "")) // the server still answers: nothing was stored
}

// Counters are absent from status when nothing measured them: no
// bytes-dropped "0" that reads as "nothing dropped".
func TestCountersAbsentWhenUnmeasured(t *testing.T) {
	e := newEnv(t, "127.0.0.1:0", nil)
	c := e.client(t, "alpha", "dtls")
	expect(t, dots.Created)(c.Mitigate(ctx(t), 1, scope("203.0.113.10/32", 3600)))
	r := expect(t, dots.Content)(c.Status(ctx(t), dots.Ptr[uint32](1), ""))
	sc := r.Body.MitigationScope.Scope[0]
	if sc.BytesDropped != nil || sc.BpsDropped != nil || sc.PktsDropped != nil || sc.PpsDropped != nil {
		t.Fatalf("unmeasured status carries counters: bytes %v bps %v pkts %v pps %v", sc.BytesDropped, sc.BpsDropped, sc.PktsDropped, sc.PpsDropped)
	}
	// Once measured, they appear over the wire.
	e.Srv.Service().Measured("scrub", divert.Key{CUID: c.CUID(), MID: 1}, divert.Counters{BytesDropped: 1500, PktsDropped: 1, BPSDropped: 12000, PPSDropped: 1})
	r = expect(t, dots.Content)(c.Status(ctx(t), dots.Ptr[uint32](1), ""))
	sc = r.Body.MitigationScope.Scope[0]
	if sc.BytesDropped == nil || *sc.BytesDropped != 1500 || sc.PpsDropped == nil || *sc.PpsDropped != 1 {
		t.Fatalf("measured status: bytes %v pps %v", sc.BytesDropped, sc.PpsDropped)
	}
}
