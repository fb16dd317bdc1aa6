package session_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/session"
)

func cur16(v uint16) *dots.Uint16Param { return &dots.Uint16Param{CurrentValue: dots.Ptr(v)} }

func curDec(v dots.Decimal) *dots.DecimalParam { return &dots.DecimalParam{CurrentValue: dots.Ptr(v)} }

func configMsg(mitigating, idle *dots.ConfigSet) *dots.Message {
	return &dots.Message{SignalConfig: &dots.SignalConfig{MitigatingConfig: mitigating, IdleConfig: idle}}
}

// fullSet sets all six parameters.
func fullSet(hb, missing, retx, probing uint16, ack, rnd dots.Decimal) *dots.ConfigSet {
	return &dots.ConfigSet{HeartbeatInterval: cur16(hb), MissingHBAllowed: cur16(missing), MaxRetransmit: cur16(retx),
		ProbingRate: cur16(probing), AckTimeout: curDec(ack), AckRandomFactor: curDec(rnd)}
}

func protoErr(t *testing.T, err error, code dots.Code) *dots.Error {
	t.Helper()
	var pe *dots.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error = %v (%T), want *dots.Error %s", err, err, code)
	}
	if pe.Code != code {
		t.Fatalf("code = %s (%s), want %s", pe.Code, pe.Diag, code)
	}
	return pe
}

// RFC 9132 §4.5.2: 2.01 for a new sid, 2.04 for the current one, 4.22 for
// an unacceptable value, 4.00 for a malformed body.
func TestNegotiate(t *testing.T) {
	configured := session.DefaultConfig()
	configured.SID = 7
	configured.Mitigating.HeartbeatInterval = 60
	configured.Idle.HeartbeatInterval = 120
	configured.Idle.ProbingRate = 10

	r := session.DefaultRanges
	for _, tc := range []struct {
		name     string
		cur      session.Config
		sid      uint32
		m        *dots.Message
		code     dots.Code // success code, or the error's
		diag     []string  // substrings of the diagnostic
		wantMit  session.Values
		wantIdle session.Values
	}{
		{name: "new sid, both sets", cur: session.DefaultConfig(), sid: 1,
			m:        configMsg(fullSet(91, 4, 5, 6, 300, 200), fullSet(220, 9, 8, 7, 250, 300)),
			code:     dots.Created,
			wantMit:  session.Values{HeartbeatInterval: 91, MissingHBAllowed: 4, MaxRetransmit: 5, ProbingRate: 6, AckTimeout: 300, AckRandomFactor: 200},
			wantIdle: session.Values{HeartbeatInterval: 220, MissingHBAllowed: 9, MaxRetransmit: 8, ProbingRate: 7, AckTimeout: 250, AckRandomFactor: 300}},
		{name: "new sid, one parameter of one set", cur: session.DefaultConfig(), sid: 1,
			m:        configMsg(&dots.ConfigSet{HeartbeatInterval: cur16(45)}, nil),
			code:     dots.Created,
			wantMit:  with(session.Defaults, func(v *session.Values) { v.HeartbeatInterval = 45 }),
			wantIdle: session.Defaults},
		{name: "same sid keeps the other set", cur: configured, sid: 7,
			m:        configMsg(&dots.ConfigSet{MissingHBAllowed: cur16(5)}, nil),
			code:     dots.Changed,
			wantMit:  with(configured.Mitigating, func(v *session.Values) { v.MissingHBAllowed = 5 }),
			wantIdle: configured.Idle},
		{name: "new sid starts again from the defaults", cur: configured, sid: 8,
			m:        configMsg(nil, &dots.ConfigSet{ProbingRate: cur16(20)}),
			code:     dots.Created,
			wantMit:  session.Defaults,
			wantIdle: with(session.Defaults, func(v *session.Values) { v.ProbingRate = 20 })},
		{name: "boundaries: every minimum", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(fullSet(15, 3, 2, 5, 100, 110), fullSet(15, 3, 2, 5, 100, 110)),
			code: dots.Created, wantMit: r.Min, wantIdle: r.Min},
		{name: "boundaries: every maximum", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(fullSet(240, 20, 15, 20, 3000, 400), fullSet(240, 20, 15, 20, 3000, 400)),
			code: dots.Created, wantMit: r.Max, wantIdle: r.Max},
		{name: "idle heartbeat 0 disables heartbeats", cur: session.DefaultConfig(), sid: 1,
			m:        configMsg(nil, &dots.ConfigSet{HeartbeatInterval: cur16(0)}),
			code:     dots.Created,
			wantMit:  session.Defaults,
			wantIdle: with(session.Defaults, func(v *session.Values) { v.HeartbeatInterval = 0 })},

		{name: "mitigating heartbeat 0 refused", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(&dots.ConfigSet{HeartbeatInterval: cur16(0)}, nil),
			code: dots.UnprocessableEntity, diag: []string{"mitigating-config", "heartbeat-interval"}},
		{name: "heartbeat above range", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(&dots.ConfigSet{HeartbeatInterval: cur16(241)}, nil),
			code: dots.UnprocessableEntity, diag: []string{"mitigating-config/heartbeat-interval", "241", "15..240"}},
		{name: "heartbeat below range", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(nil, &dots.ConfigSet{HeartbeatInterval: cur16(14)}),
			code: dots.UnprocessableEntity, diag: []string{"idle-config/heartbeat-interval", "14"}},
		{name: "missing-hb-allowed below range", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(&dots.ConfigSet{MissingHBAllowed: cur16(2)}, nil),
			code: dots.UnprocessableEntity, diag: []string{"mitigating-config/missing-hb-allowed"}},
		{name: "missing-hb-allowed 0 refused even idle", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(nil, &dots.ConfigSet{MissingHBAllowed: cur16(0)}),
			code: dots.UnprocessableEntity, diag: []string{"idle-config/missing-hb-allowed"}},
		{name: "max-retransmit above range", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(nil, &dots.ConfigSet{MaxRetransmit: cur16(16)}),
			code: dots.UnprocessableEntity, diag: []string{"idle-config/max-retransmit"}},
		{name: "probing-rate below range", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(&dots.ConfigSet{ProbingRate: cur16(4)}, nil),
			code: dots.UnprocessableEntity, diag: []string{"mitigating-config/probing-rate"}},
		{name: "ack-timeout above range", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(&dots.ConfigSet{AckTimeout: curDec(3001)}, nil),
			code: dots.UnprocessableEntity, diag: []string{"mitigating-config/ack-timeout", "30.01"}},
		{name: "ack-random-factor below range", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(nil, &dots.ConfigSet{AckRandomFactor: curDec(109)}),
			code: dots.UnprocessableEntity, diag: []string{"idle-config/ack-random-factor", "1.09"}},
		{name: "one bad value refuses the whole request", cur: configured, sid: 7,
			m:    configMsg(fullSet(30, 5, 3, 5, 200, 150), &dots.ConfigSet{ProbingRate: cur16(21)}),
			code: dots.UnprocessableEntity, diag: []string{"idle-config/probing-rate"}},

		{name: "min-value from the client", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(&dots.ConfigSet{HeartbeatInterval: &dots.Uint16Param{MinValue: dots.Ptr(uint16(15)), CurrentValue: dots.Ptr(uint16(30))}}, nil),
			code: dots.BadRequest, diag: []string{"heartbeat-interval", "min-value"}},
		{name: "max-value from the client", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(nil, &dots.ConfigSet{MaxRetransmit: &dots.Uint16Param{MaxValue: dots.Ptr(uint16(15)), CurrentValue: dots.Ptr(uint16(3))}}),
			code: dots.BadRequest, diag: []string{"idle-config/max-retransmit"}},
		{name: "min-value-decimal from the client", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(&dots.ConfigSet{AckTimeout: &dots.DecimalParam{MinValue: dots.Ptr(dots.Decimal(100)), CurrentValue: dots.Ptr(dots.Decimal(200))}}, nil),
			code: dots.BadRequest, diag: []string{"mitigating-config/ack-timeout"}},
		{name: "current-value missing", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(&dots.ConfigSet{ProbingRate: &dots.Uint16Param{}}, nil),
			code: dots.BadRequest, diag: []string{"probing-rate", "current-value"}},
		{name: "current-value-decimal missing", cur: session.DefaultConfig(), sid: 1,
			m:    configMsg(nil, &dots.ConfigSet{AckRandomFactor: &dots.DecimalParam{}}),
			code: dots.BadRequest, diag: []string{"idle-config/ack-random-factor"}},
		{name: "sid in the body", cur: session.DefaultConfig(), sid: 1,
			m:    &dots.Message{SignalConfig: &dots.SignalConfig{SID: dots.Ptr(uint32(1)), MitigatingConfig: &dots.ConfigSet{HeartbeatInterval: cur16(30)}}},
			code: dots.BadRequest, diag: []string{"sid"}},
		{name: "lower sid than the current one refused", cur: configured, sid: 6,
			m:    configMsg(&dots.ConfigSet{HeartbeatInterval: cur16(45)}, nil),
			code: dots.BadRequest, diag: []string{"sid 6 is lower than the current sid 7"}},
		{name: "sid 0 after a configuration refused", cur: configured, sid: 0,
			m:    configMsg(nil, &dots.ConfigSet{ProbingRate: cur16(20)}),
			code: dots.BadRequest, diag: []string{"lower than the current sid 7"}},
		{name: "neither set", cur: session.DefaultConfig(), sid: 1,
			m:    &dots.Message{SignalConfig: &dots.SignalConfig{}},
			code: dots.BadRequest, diag: []string{"mitigating-config or idle-config"}},
		{name: "no body", cur: session.DefaultConfig(), sid: 1, m: nil, code: dots.BadRequest},
		{name: "no signal-config", cur: session.DefaultConfig(), sid: 1,
			m: &dots.Message{Heartbeat: &dots.Heartbeat{PeerHBStatus: dots.Ptr(true)}}, code: dots.BadRequest},
		{name: "signal-config plus mitigation-scope", cur: session.DefaultConfig(), sid: 1,
			m: &dots.Message{SignalConfig: &dots.SignalConfig{MitigatingConfig: &dots.ConfigSet{HeartbeatInterval: cur16(30)}},
				MitigationScope: &dots.MitigationScope{}}, code: dots.BadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, code, err := r.Negotiate(tc.cur, tc.sid, tc.m)
			if tc.code != dots.Created && tc.code != dots.Changed {
				pe := protoErr(t, err, tc.code)
				for _, d := range tc.diag {
					if !strings.Contains(pe.Diag, d) {
						t.Errorf("Diag = %q, want it to contain %q", pe.Diag, d)
					}
				}
				if code != 0 || !reflect.DeepEqual(next, tc.cur) {
					t.Errorf("refused negotiation returned %s %+v, want 0 and the current config", code, next)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("code = %s, want %s", code, tc.code)
			}
			if next.SID != tc.sid {
				t.Errorf("SID = %d, want %d", next.SID, tc.sid)
			}
			if next.Mitigating != tc.wantMit {
				t.Errorf("mitigating = %+v, want %+v", next.Mitigating, tc.wantMit)
			}
			if next.Idle != tc.wantIdle {
				t.Errorf("idle = %+v, want %+v", next.Idle, tc.wantIdle)
			}
		})
	}
}

func with(v session.Values, f func(*session.Values)) session.Values {
	f(&v)
	return v
}

// Negotiating twice with the same sid: 2.01, then 2.04 (RFC 9132 §4.5.2).
func TestNegotiateSequence(t *testing.T) {
	r := session.DefaultRanges
	c := session.DefaultConfig()
	for i, step := range []struct {
		sid  uint32
		hb   uint16
		want dots.Code
	}{{100, 40, dots.Created}, {100, 50, dots.Changed}, {101, 60, dots.Created}, {101, 60, dots.Changed}} {
		next, code, err := r.Negotiate(c, step.sid, configMsg(&dots.ConfigSet{HeartbeatInterval: cur16(step.hb)}, nil))
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if code != step.want || next.Mitigating.HeartbeatInterval != step.hb {
			t.Fatalf("step %d: %s hb %d, want %s hb %d", i, code, next.Mitigating.HeartbeatInterval, step.want, step.hb)
		}
		c = next
	}
}

// Ranges other than the RFC's are honoured.
func TestNegotiateCustomRanges(t *testing.T) {
	r := session.DefaultRanges
	r.Max.HeartbeatInterval = 60
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Negotiate(session.DefaultConfig(), 1, configMsg(&dots.ConfigSet{HeartbeatInterval: cur16(61)}, nil)); err == nil {
		t.Fatal("61 accepted with max 60")
	} else {
		pe := protoErr(t, err, dots.UnprocessableEntity)
		if !strings.Contains(pe.Diag, "15..60") {
			t.Errorf("Diag = %q", pe.Diag)
		}
	}
}

// RFC 9132 §4.5.1: GET /config returns min, max and current values of all
// parameters in both sets (sid only when asked and known).
func TestDescribe(t *testing.T) {
	c := session.Config{SID: 42,
		Mitigating: session.Values{HeartbeatInterval: 91, MissingHBAllowed: 4, MaxRetransmit: 5, ProbingRate: 6, AckTimeout: 300, AckRandomFactor: 200},
		Idle:       session.Values{HeartbeatInterval: 0, MissingHBAllowed: 9, MaxRetransmit: 8, ProbingRate: 7, AckTimeout: 250, AckRandomFactor: 300}}
	r := session.DefaultRanges
	for _, tc := range []struct {
		name    string
		c       session.Config
		withSID bool
		wantSID bool
	}{
		{"with sid", c, true, true},
		{"without sid", c, false, false},
		{"sid asked but none negotiated", session.DefaultConfig(), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := r.Describe(tc.c, tc.withSID)
			if m == nil || m.SignalConfig == nil || m.MitigationScope != nil || m.Heartbeat != nil || m.RedirectedSignal != nil {
				t.Fatalf("Describe = %+v, want signal-config only", m)
			}
			sc := m.SignalConfig
			if (sc.SID != nil) != tc.wantSID || (tc.wantSID && *sc.SID != tc.c.SID) {
				t.Errorf("sid = %v, want present=%v", sc.SID, tc.wantSID)
			}
			for _, set := range []struct {
				name string
				cs   *dots.ConfigSet
				v    session.Values
			}{{"mitigating-config", sc.MitigatingConfig, tc.c.Mitigating}, {"idle-config", sc.IdleConfig, tc.c.Idle}} {
				if set.cs == nil {
					t.Fatalf("%s missing", set.name)
				}
				checkU16(t, set.name+"/heartbeat-interval", set.cs.HeartbeatInterval, r.Min.HeartbeatInterval, r.Max.HeartbeatInterval, set.v.HeartbeatInterval)
				checkU16(t, set.name+"/missing-hb-allowed", set.cs.MissingHBAllowed, r.Min.MissingHBAllowed, r.Max.MissingHBAllowed, set.v.MissingHBAllowed)
				checkU16(t, set.name+"/max-retransmit", set.cs.MaxRetransmit, r.Min.MaxRetransmit, r.Max.MaxRetransmit, set.v.MaxRetransmit)
				checkU16(t, set.name+"/probing-rate", set.cs.ProbingRate, r.Min.ProbingRate, r.Max.ProbingRate, set.v.ProbingRate)
				checkDec(t, set.name+"/ack-timeout", set.cs.AckTimeout, r.Min.AckTimeout, r.Max.AckTimeout, set.v.AckTimeout)
				checkDec(t, set.name+"/ack-random-factor", set.cs.AckRandomFactor, r.Min.AckRandomFactor, r.Max.AckRandomFactor, set.v.AckRandomFactor)
			}

			b, err := dots.Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			back, err := dots.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(back, m) {
				t.Errorf("round trip changed the message:\n got %+v\nwant %+v", back.SignalConfig, m.SignalConfig)
			}
			// A client echoing the description back is refused: min/max
			// are server-to-client only.
			_, _, err = r.Negotiate(tc.c, tc.c.SID, &dots.Message{SignalConfig: &dots.SignalConfig{
				MitigatingConfig: sc.MitigatingConfig, IdleConfig: sc.IdleConfig}})
			protoErr(t, err, dots.BadRequest)
		})
	}
}

func checkU16(t *testing.T, name string, p *dots.Uint16Param, min, max, cur uint16) {
	t.Helper()
	if p == nil || p.MinValue == nil || p.MaxValue == nil || p.CurrentValue == nil {
		t.Errorf("%s = %+v, want min, max and current", name, p)
		return
	}
	if *p.MinValue != min || *p.MaxValue != max || *p.CurrentValue != cur {
		t.Errorf("%s = %d/%d/%d, want %d/%d/%d", name, *p.MinValue, *p.MaxValue, *p.CurrentValue, min, max, cur)
	}
}

func checkDec(t *testing.T, name string, p *dots.DecimalParam, min, max, cur dots.Decimal) {
	t.Helper()
	if p == nil || p.MinValue == nil || p.MaxValue == nil || p.CurrentValue == nil {
		t.Errorf("%s = %+v, want min, max and current", name, p)
		return
	}
	if *p.MinValue != min || *p.MaxValue != max || *p.CurrentValue != cur {
		t.Errorf("%s = %s/%s/%s, want %s/%s/%s", name, *p.MinValue, *p.MaxValue, *p.CurrentValue, min, max, cur)
	}
}

func TestDefaults(t *testing.T) {
	// RFC 9132 §4.5 / Appendix C.
	want := session.Values{HeartbeatInterval: 30, MissingHBAllowed: 15, MaxRetransmit: 3, AckTimeout: 200, AckRandomFactor: 150, ProbingRate: 5}
	if session.Defaults != want {
		t.Errorf("Defaults = %+v, want %+v", session.Defaults, want)
	}
	c := session.DefaultConfig()
	if c.SID != 0 || c.Mitigating != want || c.Idle != want {
		t.Errorf("DefaultConfig = %+v", c)
	}
	if err := session.DefaultRanges.Validate(); err != nil {
		t.Errorf("DefaultRanges invalid: %v", err)
	}
}

func TestConfigCurrent(t *testing.T) {
	c := session.DefaultConfig()
	c.Mitigating.HeartbeatInterval, c.Idle.HeartbeatInterval = 15, 120
	if got := c.Current(true).HeartbeatInterval; got != 15 {
		t.Errorf("Current(mitigating) hb = %d", got)
	}
	if got := c.Current(false).HeartbeatInterval; got != 120 {
		t.Errorf("Current(idle) hb = %d", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(r *session.Ranges)
		field string // "" = valid
	}{
		{"defaults", func(r *session.Ranges) {}, ""},
		{"min above max", func(r *session.Ranges) { r.Min.MaxRetransmit, r.Max.MaxRetransmit = 10, 5 }, "max-retransmit"},
		{"default below min", func(r *session.Ranges) { r.Min.HeartbeatInterval = 31 }, "heartbeat-interval"},
		{"default above max", func(r *session.Ranges) { r.Max.MissingHBAllowed = 14 }, "missing-hb-allowed"},
		{"probing", func(r *session.Ranges) { r.Max.ProbingRate = 4 }, "probing-rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := session.DefaultRanges
			tc.edit(&r)
			err := r.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate = %v, want an error naming %s", err, tc.field)
			}
		})
	}
}
