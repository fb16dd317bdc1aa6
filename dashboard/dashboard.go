package dashboard

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/divert/scrub"
	"github.com/levee-dots/levee/dotsserver/mitigation"
	"github.com/levee-dots/levee/service"
)

// Mitigations is what the dashboard reads of the mitigation service
// (implemented by *service.Service).
type Mitigations interface {
	AllMitigations() []*mitigation.Record
	Watch(fn func(service.Event)) (cancel func())
}

// Neighbors is the BGP speaker's status (implemented by *bgp.Backend).
type Neighbors interface {
	Neighbors() []bgp.NeighborStatus
}

// Scrubbers is the scrubbing backend's view of its nodes (implemented by
// *scrub.Backend).
type Scrubbers interface {
	Nodes() []scrub.NodeStatus
}

// Sessions counts the signal-channel sessions by cuid (implemented by
// *dotsserver.Server).
type Sessions interface {
	SessionCounts() map[string]int
}

// Options configure a Dashboard. Service is required, and a Token or
// client certificates (TLS on the listener) to let anyone in.
type Options struct {
	Service   Mitigations
	Neighbors Neighbors // nil: no BGP speaker configured
	Scrubbers Scrubbers // nil: no scrubbing backend configured
	Sessions  Sessions  // nil: sessions not counted
	// Backends are the names of the configured diversion backends, to
	// tell their parts of a mitigation's note apart.
	Backends []string
	// Token is the bearer token (LoadToken); nil: only client
	// certificates verified by the listener's TLS are accepted.
	Token  []byte
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// SampleEvery is how often the counters are read for the plots
	// (default 5 s).
	SampleEvery time.Duration
	// Tick, when set, replaces the ticker of SampleEvery: a sample is
	// taken at each time received (tests drive it).
	Tick <-chan time.Time
	// MaxStreams bounds the live (server-sent events) connections
	// (default 32); more are answered 503.
	MaxStreams int
	// LogSize is the number of events kept (default 1000).
	LogSize int
}

// maxSamples bounds each mitigation's ring, whatever SampleEvery is.
const maxSamples = 1800

// Dashboard is the web dashboard's handler. Close stops its goroutine and
// its Watch registration.
type Dashboard struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	auth *auth
	mux  *http.ServeMux

	mu      sync.Mutex // guards samples, events, streams
	samples map[mitigation.Key]*ring
	events  *logRing
	streams map[chan []byte]struct{}

	cancelWatch func()
	stop        chan struct{}
	wg          sync.WaitGroup
	closeOnce   sync.Once
}

// New builds the dashboard, registers it with the service's Watch and
// starts sampling the counters.
func New(opts Options) (*Dashboard, error) {
	if opts.Service == nil {
		return nil, errors.New("dashboard: a service is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = 5 * time.Second
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 32
	}
	if opts.LogSize <= 0 {
		opts.LogSize = 1000
	}
	d := &Dashboard{opts: opts, log: opts.Logger, now: opts.Now, auth: newAuth(opts.Token),
		samples: map[mitigation.Key]*ring{}, events: newLogRing(opts.LogSize),
		streams: map[chan []byte]struct{}{}, stop: make(chan struct{})}
	d.routes()
	d.cancelWatch = opts.Service.Watch(d.watched)
	d.sample()
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.sampleLoop() }()
	return d, nil
}

// Close unregisters from the service, stops sampling and ends the live
// streams.
func (d *Dashboard) Close() {
	d.closeOnce.Do(func() {
		d.cancelWatch()
		close(d.stop)
		d.wg.Wait()
		d.mu.Lock()
		for ch := range d.streams {
			close(ch)
			delete(d.streams, ch)
		}
		d.mu.Unlock()
	})
}

func (d *Dashboard) sampleLoop() {
	tick := d.opts.Tick
	if tick == nil {
		t := time.NewTicker(d.opts.SampleEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-d.stop:
			return
		case <-tick:
			d.sample()
		}
	}
}

// ringSize is the samples kept per mitigation: the plots' window.
func (d *Dashboard) ringSize() int {
	return min(maxSamples, int(Window/d.opts.SampleEvery)+1)
}

// sample reads every mitigation's counters once: a sample for each one
// something measures, none for the others. Rings of mitigations gone are
// dropped. The new samples go to the live streams.
func (d *Dashboard) sample() {
	now := d.now()
	recs := d.opts.Service.AllMitigations()
	var fresh []sampleJSON
	d.mu.Lock()
	seen := make(map[mitigation.Key]bool, len(recs))
	for _, r := range recs {
		seen[r.Key] = true
		if r.Counters == nil {
			continue
		}
		rg := d.samples[r.Key]
		if rg == nil {
			rg = newRing(d.ringSize())
			d.samples[r.Key] = rg
		}
		s := Sample{At: now, BPS: r.Counters.BPSDropped, PPS: r.Counters.PPSDropped, Bytes: r.Counters.BytesDropped, Pkts: r.Counters.PktsDropped}
		rg.add(s)
		fresh = append(fresh, sampleOf(r.Key, s))
	}
	for k := range d.samples {
		if !seen[k] {
			delete(d.samples, k)
		}
	}
	d.mu.Unlock()
	if len(fresh) > 0 {
		d.publish("samples", fresh)
	}
}

// watched takes one of the service's events: into the log, and to the
// live streams. It runs on the service's notification worker and never
// blocks.
func (d *Dashboard) watched(ev service.Event) {
	if ev.Periodic {
		return
	}
	now := d.now()
	var items []mitigationJSON
	var logged []eventJSON
	d.mu.Lock()
	for i, rs := range [][]*mitigation.Record{ev.Changed, ev.Final} {
		for _, r := range rs {
			e := LogEntry{At: now, CUID: r.CUID, MID: r.MID, Ended: i == 1, Record: r}
			d.events.add(e)
			items = append(items, d.itemOf(r))
			logged = append(logged, eventOf(e))
		}
	}
	d.mu.Unlock()
	d.publish("mitigations", items)
	d.publish("log", logged)
}

// publish sends one server-sent event to every live stream. A stream that
// is not keeping up is ended (the browser reconnects and reloads).
func (d *Dashboard) publish(event string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		d.log.Error("dashboard: encoding an event", "err", err)
		return
	}
	msg := []byte("event: " + event + "\ndata: " + string(b) + "\n\n")
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.streams {
		select {
		case ch <- msg:
		default:
			close(ch)
			delete(d.streams, ch)
		}
	}
}

// subscribe registers a live stream, or reports false at MaxStreams.
func (d *Dashboard) subscribe() (chan []byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.streams) >= d.opts.MaxStreams {
		return nil, false
	}
	select {
	case <-d.stop:
		return nil, false
	default:
	}
	ch := make(chan []byte, 64)
	d.streams[ch] = struct{}{}
	return ch, true
}

func (d *Dashboard) unsubscribe(ch chan []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.streams[ch]; ok {
		close(ch)
		delete(d.streams, ch)
	}
}
