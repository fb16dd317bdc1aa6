package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsclient"
)

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

// view renders status --watch: a redrawn screen on a terminal, appended
// blocks under a timestamp line otherwise, or one JSON object a line.
type view struct {
	out    io.Writer
	json   bool
	tty    bool
	oneMID bool     // following one mid, not all
	header string   // first line on a terminal
	last   []byte   // the last table, kept on screen while reconnecting
	rates  *rateLog // measured by the client from successive counters
}

func newView(g *globals, mid *uint32, interval time.Duration) *view {
	what := "all mitigations"
	if mid != nil {
		what = fmt.Sprintf("mid %d", *mid)
	}
	return &view{out: g.stdout, json: g.output == "json", tty: isTerminal(g.stdout), oneMID: mid != nil,
		header: fmt.Sprintf("dotsctl status --watch: %s, every %s (Ctrl-C ends)", what, interval),
		rates:  newRateLog(interval / 2)}
}

// isTerminal reports whether w is a terminal (it has terminal attributes;
// /dev/null, files and pipes have none).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlReadTermios)
	return err == nil
}

// watchRow is one mitigation of a refresh; it is also the -o json form.
type watchRow struct {
	MID          uint32    `json:"mid"`
	Status       string    `json:"status,omitempty"`
	Lifetime     *int64    `json:"lifetime,omitempty"`
	Targets      string    `json:"targets,omitempty"`
	PktsDropped  *dots.U64 `json:"pkts-dropped,omitempty"`
	BytesDropped *dots.U64 `json:"bytes-dropped,omitempty"`
	PpsDropped   *dots.U64 `json:"pps-dropped,omitempty"`
	BpsDropped   *dots.U64 `json:"bps-dropped,omitempty"`
	Measured     *measured `json:"measured,omitempty"` // by the client, absent before two samples
	Note         string    `json:"note,omitempty"`
}

// watchLine is one -o json line.
type watchLine struct {
	Time         string     `json:"time"`
	Code         string     `json:"code,omitempty"`
	Diag         string     `json:"diag,omitempty"`
	Mitigations  []watchRow `json:"mitigations"`
	Reconnecting string     `json:"reconnecting,omitempty"` // the error that ended the session
	RetryIn      string     `json:"retry-in,omitempty"`
}

func (v *view) rows(at time.Time, r *dotsclient.Response) []watchRow {
	rows := []watchRow{}
	if r.Code != dots.Content || r.Body == nil || r.Body.MitigationScope == nil {
		return rows
	}
	seen := map[uint32]bool{}
	for _, s := range r.Body.MitigationScope.Scope {
		if s.MID == nil {
			continue
		}
		seen[*s.MID] = true
		row := watchRow{MID: *s.MID, Lifetime: s.Lifetime, Targets: targets(s), PktsDropped: s.PktsDropped,
			BytesDropped: s.BytesDropped, PpsDropped: s.PpsDropped, BpsDropped: s.BpsDropped,
			Measured: v.rates.add(at, *s.MID, s.PktsDropped, s.BytesDropped)}
		if s.Status != nil {
			row.Status = s.Status.String()
		}
		if n := note(s); n != "-" {
			row.Note = n
		}
		rows = append(rows, row)
	}
	v.rates.keep(seen)
	return rows
}

// show renders one answer of the server.
func (v *view) show(at time.Time, r *dotsclient.Response) error {
	rows := v.rows(at, r)
	if v.json {
		return v.line(watchLine{Time: at.UTC().Format(time.RFC3339Nano), Code: r.Code.String(), Diag: r.Diag, Mitigations: rows})
	}
	var b bytes.Buffer
	switch {
	case r.Code == dots.Content && len(rows) > 0:
		writeWatchTable(&b, rows)
	case r.Code == dots.Content || (r.Code == dots.NotFound && !v.oneMID):
		b.WriteString("no mitigations\n")
	case r.Code == dots.NotFound:
		fmt.Fprintf(&b, "no such mitigation (%s): withdrawn and ended, or never requested\n", r.Code)
	default:
		fmt.Fprintf(&b, "the server answered %s %s\n", r.Code, r.Diag)
	}
	v.last = b.Bytes()
	return v.block(at, v.last, "")
}

// reconnecting shows that the session was lost; the last table stays on
// a terminal.
func (v *view) reconnecting(at time.Time, err error, delay time.Duration) error {
	if v.json {
		return v.line(watchLine{Time: at.UTC().Format(time.RFC3339Nano), Mitigations: []watchRow{},
			Reconnecting: err.Error(), RetryIn: delay.String()})
	}
	msg := fmt.Sprintf("reconnecting (%v): next attempt in %s\n", err, delay)
	if v.tty {
		return v.block(at, v.last, msg)
	}
	return v.block(at, nil, msg)
}

// block writes one refresh: on a terminal the whole screen, otherwise a
// timestamp line and the text.
func (v *view) block(at time.Time, body []byte, msg string) error {
	var b bytes.Buffer
	if v.tty {
		fmt.Fprintf(&b, "%s%s\n%s\n\n", clearScreen, v.header, at.Format(time.DateTime))
	} else {
		fmt.Fprintf(&b, "--- %s\n", at.UTC().Format(time.RFC3339))
	}
	b.Write(body)
	b.WriteString(msg)
	_, err := v.out.Write(b.Bytes())
	return err
}

func (v *view) line(l watchLine) error {
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	_, err = v.out.Write(append(b, '\n'))
	return err
}

func writeWatchTable(w io.Writer, rows []watchRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MID\tSTATUS\tLIFETIME\tTARGETS\tPKTS-DROPPED\tBYTES-DROPPED\tPPS-DROPPED\tBPS-DROPPED\tMEASURED\tNOTE")
	for _, r := range rows {
		m := "-"
		if r.Measured != nil {
			m = r.Measured.String()
		}
		status := r.Status
		if status == "" {
			status = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.MID, status, lifetimeOpt(r.Lifetime), r.Targets,
			count(r.PktsDropped, packets), count(r.BytesDropped, byteCount), count(r.PpsDropped, pps), count(r.BpsDropped, bitRate),
			m, orDash(r.Note))
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// count renders a counter of the server, "-" when it sent none.
func count(p *dots.U64, unit func(float64) string) string {
	if p == nil {
		return "-"
	}
	return unit(float64(*p))
}

// si scales v to k, M, G, ... (powers of 1000) with three significant
// digits: "950", "1.01" "M", "12.3" "k", "150" "M".
func si(v float64) (num, prefix string) {
	prefixes := []string{"", "k", "M", "G", "T", "P", "E"}
	i := 0
	for v >= 999.5 && i < len(prefixes)-1 {
		v /= 1000
		i++
	}
	switch {
	case i == 0 || v >= 99.95:
		return fmt.Sprintf("%.0f", v), prefixes[i]
	case v >= 9.995:
		return fmt.Sprintf("%.1f", v), prefixes[i]
	}
	return fmt.Sprintf("%.2f", v), prefixes[i]
}

func packets(v float64) string   { n, p := si(v); return n + p }
func byteCount(v float64) string { n, p := si(v); return n + " " + p + "B" }
func pps(v float64) string       { n, p := si(v); return n + p + " pps" }
func bitRate(v float64) string   { n, p := si(v); return n + " " + p + "bit/s" }

// measured is a drop rate the client computed from two samples of the
// pkts-dropped and bytes-dropped counters.
type measured struct {
	PPS     float64 `json:"pps"`
	BPS     float64 `json:"bps"`
	Seconds float64 `json:"seconds"` // between the two samples
}

func (m *measured) String() string { return pps(m.PPS) + ", " + bitRate(m.BPS) }

type sample struct {
	at           time.Time
	pkts, octets uint64
}

// rateLog keeps, per mid, the counters of the last sample and the rate
// measured since the one before. Samples closer than minGap are not
// taken: the rate over a few milliseconds says nothing.
type rateLog struct {
	minGap time.Duration
	base   map[uint32]sample
	rate   map[uint32]measured
}

func newRateLog(minGap time.Duration) *rateLog {
	return &rateLog{minGap: minGap, base: map[uint32]sample{}, rate: map[uint32]measured{}}
}

// add records the counters of mid at time at and returns the measured
// rate, nil until two samples exist (or after a counter went backwards).
func (l *rateLog) add(at time.Time, mid uint32, pkts, octets *dots.U64) *measured {
	if pkts == nil || octets == nil {
		delete(l.base, mid)
		delete(l.rate, mid)
		return nil
	}
	cur := sample{at, uint64(*pkts), uint64(*octets)}
	b, ok := l.base[mid]
	switch {
	case !ok || cur.pkts < b.pkts || cur.octets < b.octets:
		l.base[mid] = cur
		delete(l.rate, mid)
	case at.Sub(b.at) >= l.minGap:
		secs := at.Sub(b.at).Seconds()
		l.rate[mid] = measured{PPS: float64(cur.pkts-b.pkts) / secs, BPS: float64(cur.octets-b.octets) * 8 / secs, Seconds: secs}
		l.base[mid] = cur
	}
	if m, ok := l.rate[mid]; ok {
		return &m
	}
	return nil
}

// keep forgets the mids not in seen.
func (l *rateLog) keep(seen map[uint32]bool) {
	for mid := range l.base {
		if !seen[mid] {
			delete(l.base, mid)
			delete(l.rate, mid)
		}
	}
}
