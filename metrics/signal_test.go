package metrics_test

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/tcp"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/metrics"
)

// TestSignal runs a real signal channel on loopback with the metrics hooks
// and collector, over each transport: the session and handshake are
// counted, each request by method, resource and code with its latency,
// and the heartbeats the server sends.
func TestSignal(t *testing.T) {
	for _, transport := range []string{"dtls", "tls"} {
		t.Run(transport, func(t *testing.T) {
			m := metrics.New(metrics.Options{})
			clk := dotstest.NewClock()
			s := dotstest.Start(t, dotstest.Options{Mutate: func(o *dotsserver.Options) {
				clk.Install(o)
				o.Hooks = dotsserver.Hooks{Request: m.Request, Heartbeat: m.Heartbeat}
			}})
			if err := m.Register(metrics.NewSignalCollector(s.Srv)); err != nil {
				t.Fatal(err)
			}
			reg := m.Registry()
			tr := map[string]string{"transport": transport}
			waitSample(t, reg, "levee_signal_sessions", tr, 0)

			c, err := dotsclient.Dial(ctx(t), dotsclient.Config{Servers: []string{s.Addr}, Certificate: s.ClientCert(t, "alpha"),
				RootCAs: s.Roots, Transport: transport})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r, err := c.Mitigate(ctx(t), 1, dots.Scope{TargetPrefix: []string{"203.0.113.5/32"}, Lifetime: dots.Ptr[int64](3600)})
			if err != nil || r.Code != dots.Created {
				t.Fatalf("PUT: %v %+v", err, r)
			}
			for range 2 {
				if r, err := c.Status(ctx(t), dots.Ptr[uint32](1), ""); err != nil || r.Code != dots.Content {
					t.Fatalf("GET: %v %+v", err, r)
				}
			}
			if r, err := c.Status(ctx(t), dots.Ptr[uint32](9), ""); err != nil || r.Code != dots.NotFound {
				t.Fatalf("GET mid 9: %v %+v", err, r)
			}

			waitSample(t, reg, "levee_signal_sessions", tr, 1)
			waitSample(t, reg, "levee_signal_handshakes_total", map[string]string{"transport": transport, "result": "completed"}, 1)
			put := map[string]string{"method": "PUT", "resource": "mitigate"}
			get := map[string]string{"method": "GET", "resource": "mitigate"}
			for _, tc := range []struct {
				name   string
				labels map[string]string
				want   float64
			}{
				{"levee_signal_requests_total", with(put, "code", "2.01"), 1},
				{"levee_signal_requests_total", with(get, "code", "2.05"), 2},
				{"levee_signal_requests_total", with(get, "code", "4.04"), 1},
				{"levee_signal_request_duration_seconds", put, 1},
				{"levee_signal_request_duration_seconds", get, 3},
			} {
				waitSample(t, reg, tc.name, tc.labels, tc.want)
			}
			if _, ok := sample(t, reg, "levee_signal_heartbeats_sent_total", tr); ok {
				t.Fatal("heartbeats counted before the server sent any")
			}
			clk.Advance(30 * time.Second) // the default heartbeat-interval
			waitSample(t, reg, "levee_signal_heartbeats_sent_total", tr, 1)
			if v, ok := sample(t, reg, "levee_signal_heartbeats_missed_total", tr); ok {
				t.Fatalf("an answered heartbeat counted as missed (%v)", v)
			}
			if transport == "dtls" {
				// dotsclient closes its DTLS socket on Close (its TLS
				// socket stays open until the process ends).
				c.Close()
				waitSample(t, reg, "levee_signal_sessions", tr, 0)
			}
			lint(t, reg)
		})
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range m {
		out[a] = b
	}
	return out
}

// TestHeartbeatMissed: a client that leaves the server's heartbeat
// unanswered is counted in levee_signal_heartbeats_missed_total.
func TestHeartbeatMissed(t *testing.T) {
	m := metrics.New(metrics.Options{})
	clk := dotstest.NewClock()
	s := dotstest.Start(t, dotstest.Options{Mutate: func(o *dotsserver.Options) {
		clk.Install(o)
		o.Hooks = dotsserver.Hooks{Request: m.Request, Heartbeat: m.Heartbeat}
	}})
	tc, err := tls.Dial("tcp", s.Addr, &tls.Config{Certificates: []tls.Certificate{s.ClientCert(t, "alpha")}, RootCAs: s.Roots,
		ServerName: "127.0.0.1", NextProtos: []string{"coap"}})
	if err != nil {
		t.Fatal(err)
	}
	silent := make(chan struct{})
	cc, err := tcp.Client(tc, options.WithCloseSocket(), options.WithMux(mux.HandlerFunc(func(mux.ResponseWriter, *mux.Message) {
		<-silent // the heartbeat is never answered
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	defer close(silent)
	// The first request identifies the session's client.
	r, err := cc.Get(ctx(t), "/.well-known/dots/config")
	if err != nil || r.Code() != codes.Content {
		t.Fatalf("GET /config: %v %v", err, r)
	}
	tr := map[string]string{"transport": "tls"}
	clk.Advance(30 * time.Second)
	waitSample(t, m.Registry(), "levee_signal_heartbeats_sent_total", tr, 1)
	// The server abandons the heartbeat after 5 s.
	waitSample(t, m.Registry(), "levee_signal_heartbeats_missed_total", tr, 1)
}
