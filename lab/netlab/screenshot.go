//go:build linux

package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/lab/chromium"
)

// dashboardListen is the dashboard's address in the control node (on its
// loopback: only what runs in that namespace reaches it).
const dashboardListen = "127.0.0.1:8080"

// dashboard sets dotsd's dashboard up: its address where dotsd runs, and a
// fresh token in Dir/dashboard.token (0600).
func (s *scenario) dashboard() error {
	s.cfg.Dashboard = dashboardListen
	if s.daemons == "" {
		var err error
		if s.cfg.Dashboard, err = freePort(); err != nil {
			return err
		}
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("netlab: dashboard token: %w", err)
	}
	s.token = hex.EncodeToString(b)
	if _, err := s.write(DashboardToken, s.token+"\n"); err != nil {
		return err
	}
	s.res.Dashboard = "http://" + s.cfg.Dashboard + "/"
	return nil
}

// Burst is one burst of the screenshot's attack: Rate packets a second
// for Length, then a Pause with no attack.
type Burst struct {
	Rate          int
	Length, Pause time.Duration
}

// ShotBursts are the attack behind the screenshot: about 2 minutes in
// three bursts of different rates with pauses between, 230,000 packets at
// most. The last is longer than divert/scrub.MeasuredNoteInterval (the
// scrubbing note's rates are rewritten once a minute), so that the note
// in the picture, taken near its end, was read during it.
var ShotBursts = []Burst{
	{Rate: 1000, Length: 20 * time.Second, Pause: 10 * time.Second},
	{Rate: 3000, Length: 20 * time.Second, Pause: 10 * time.Second},
	{Rate: 2000, Length: 75 * time.Second},
}

// ShotResult is what the screenshot's bursts did, and where the picture
// went.
type ShotResult struct {
	Path     string
	Sent     int      // attack packets of the bursts
	Reached  int      // of them, at the target
	Scrubbed NFTCount // the scrubber's drop counters' increase
	// PktsDropped is the increase of the mitigation's pkts-dropped in
	// dotsctl status over the bursts.
	PktsDropped uint64
}

// burst floods at b.Rate for b.Length (paced: Rate/100 packets every
// 10 ms, in floods of at most 25 s), and returns the packets sent.
func (s *scenario) burst(b Burst) (int, error) {
	sent := 0
	for left := b.Length; left > 0; left -= 25 * time.Second {
		d := min(left, 25*time.Second)
		n, err := s.l.Flood(Attacker, Flood{Src: AttackSrc, Dst: AttackDst, Count: b.Rate * int(d/time.Second), Size: AttackPayload,
			Duration: d, Burst: max(1, b.Rate/100), Pause: 10 * time.Millisecond})
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// screenshot sends ShotBursts under mitigation and, during the last one,
// has headless Chromium, where dotsd runs, log in to the dashboard with
// its token and take a picture of the mitigation's page.
func (s *scenario) screenshot(ctx context.Context) error {
	profile, err := os.MkdirTemp("", "netlab-chromium-")
	if err != nil {
		return fmt.Errorf("netlab: screenshot: %w", err)
	}
	defer os.RemoveAll(profile)
	ns := ""
	if s.daemons != "" {
		ns = s.l.Namespace(s.daemons)
	}
	b, err := chromium.Start(chromium.Options{Netns: ns, Profile: profile, Width: 1280, Height: 1100})
	if err != nil {
		return err
	}
	defer b.Close()
	if err := s.login(b); err != nil {
		return err
	}
	return s.bursts(ctx, b)
}

// bursts sends ShotBursts, shoots the picture during the last one, and
// checks where the bursts went.
func (s *scenario) bursts(ctx context.Context, b *chromium.Browser) error {
	r := &ShotResult{Path: s.o.Screenshot}
	s.res.Shot = r
	scr0, err := s.l.ScrubberDropped()
	if err != nil {
		return err
	}
	sc0, err := s.client.Status(ctx, s.res.MID)
	if err != nil {
		return err
	}
	p0, _ := dropped(sc0)
	at0 := s.count.Count()
	for i, bu := range ShotBursts {
		var n int
		if i < len(ShotBursts)-1 {
			n, err = s.burst(bu)
		} else {
			n, err = s.lastBurst(b, bu)
		}
		r.Sent += n
		if err != nil {
			return err
		}
		then := ""
		if bu.Pause > 0 {
			then = fmt.Sprintf(", then %v without", bu.Pause)
		}
		s.step("screenshot: burst %d of %d, %d attack packets at %d/s for %v%s", i+1, len(ShotBursts), n, bu.Rate, bu.Length, then)
		time.Sleep(bu.Pause)
	}
	sc, err := s.status(ctx, "bursts counted", func(sc dots.Scope) bool { p, _ := dropped(sc); return p >= p0+uint64(r.Sent) })
	p, _ := dropped(sc)
	r.PktsDropped = p - p0
	r.Reached = s.count.Count() - at0
	scr, rerr := s.l.ScrubberDropped()
	r.Scrubbed = NFTCount{scr.Packets - scr0.Packets, scr.Bytes - scr0.Bytes}
	s.step("screenshot: %d attack packets in %d bursts, %d reached the target, scrubber dropped %d, %s status pkts-dropped +%d; picture of %s in %s",
		r.Sent, len(ShotBursts), r.Reached, r.Scrubbed.Packets, s.who, r.PktsDropped, s.res.Dashboard, r.Path)
	return errors.Join(err, rerr)
}

// lastBurst sends bu and, 7 s before its end, shoots the picture.
func (s *scenario) lastBurst(b *chromium.Browser, bu Burst) (int, error) {
	type sent struct {
		n   int
		err error
	}
	done := make(chan sent, 1)
	go func() { n, err := s.burst(bu); done <- sent{n, err} }()
	shotErr := s.shoot(b, bu.Length-7*time.Second)
	d := <-done
	return d.n, errors.Join(d.err, shotErr)
}

// login logs the browser in with the dashboard's token, through the login
// form (which sets the session cookie).
func (s *scenario) login(b *chromium.Browser) error {
	if err := b.Navigate(s.res.Dashboard + "login"); err != nil {
		return err
	}
	if err := b.WaitJS("the login form", `document.getElementById('token') !== null`, 20*time.Second); err != nil {
		return err
	}
	if err := b.Eval(fmt.Sprintf(`document.getElementById('token').value = %q; document.querySelector('form').submit(); true`, s.token), nil); err != nil {
		return err
	}
	return b.WaitJS("the overview after login", `location.pathname === '/' && document.body.dataset.ready === 'true'`, 20*time.Second)
}

// shoot waits for after, then loads the mitigation's page and writes its
// picture once its plots and its scrubbing state are drawn.
func (s *scenario) shoot(b *chromium.Browser, after time.Duration) error {
	time.Sleep(after)
	var cuid string
	if err := b.Eval(fmt.Sprintf(`fetch('/api/mitigations').then(r => r.json()).then(j => (j.mitigations.find(m => m.mid === %d) || {cuid: ''}).cuid)`, s.res.MID), &cuid); err != nil {
		return err
	}
	if cuid == "" {
		return fmt.Errorf("netlab: screenshot: the dashboard lists no mitigation %d", s.res.MID)
	}
	page := fmt.Sprintf("%smitigation?cuid=%s&mid=%d", s.res.Dashboard, url.QueryEscape(cuid), s.res.MID)
	if err := b.Navigate(page); err != nil {
		return err
	}
	if err := b.WaitJS("the mitigation's plots and scrubbing state", `document.body.dataset.ready === 'true' && document.querySelector('#live.on') !== null &&
		+document.querySelector('#plot-bps path.line').dataset.points >= 10 && document.querySelector('#outcome tr[data-backend="scrub"]') !== null`, 20*time.Second); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // the fonts and the last layout
	if err := os.MkdirAll(filepath.Dir(s.o.Screenshot), 0o755); err != nil {
		return fmt.Errorf("netlab: screenshot: %w", err)
	}
	return b.Screenshot(s.o.Screenshot)
}

// Problems lists where the screenshot's bursts were not scrubbed as the
// scenario promises.
func (r *ShotResult) Problems() []string {
	var p []string
	if r.Sent == 0 || r.Reached != 0 {
		p = append(p, fmt.Sprintf("screenshot: %d of %d attack packets of the bursts reached the target", r.Reached, r.Sent))
	}
	if r.Scrubbed.Packets != uint64(r.Sent) || r.PktsDropped != uint64(r.Sent) {
		p = append(p, fmt.Sprintf("screenshot: %d attack packets sent, the scrubber dropped %d, pkts-dropped rose by %d", r.Sent, r.Scrubbed.Packets, r.PktsDropped))
	}
	return p
}
