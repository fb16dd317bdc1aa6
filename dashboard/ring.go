package dashboard

import (
	"time"

	"github.com/levee-dots/levee/dotsserver/mitigation"
)

// Window is how far back the drop-rate plots go.
const Window = 15 * time.Minute

// Sample is one reading of a mitigation's measured counters.
type Sample struct {
	At    time.Time
	BPS   uint64 // bits dropped per second
	PPS   uint64 // packets dropped per second
	Bytes uint64 // bytes dropped in total
	Pkts  uint64 // packets dropped in total
}

// ring keeps the last samples of one mitigation, at most len(buf).
type ring struct {
	buf   []Sample
	next  int
	count int
}

func newRing(n int) *ring { return &ring{buf: make([]Sample, n)} }

func (r *ring) add(s Sample) {
	r.buf[r.next] = s
	r.next = (r.next + 1) % len(r.buf)
	if r.count < len(r.buf) {
		r.count++
	}
}

// since returns the samples taken after t, oldest first.
func (r *ring) since(t time.Time) []Sample {
	out := make([]Sample, 0, r.count)
	for i := 0; i < r.count; i++ {
		s := r.buf[(r.next-r.count+i+len(r.buf))%len(r.buf)]
		if s.At.After(t) {
			out = append(out, s)
		}
	}
	return out
}

// LogEntry is one change of a mitigation in the event log.
type LogEntry struct {
	At     time.Time
	CUID   string
	MID    uint32
	Ended  bool // the request ended (status 6 after it)
	Record *mitigation.Record
}

// logRing is the bounded event log, oldest overwritten first.
type logRing struct {
	buf   []LogEntry
	next  int
	count int
	seq   uint64 // entries ever added
}

func newLogRing(n int) *logRing { return &logRing{buf: make([]LogEntry, n)} }

func (l *logRing) add(e LogEntry) {
	l.buf[l.next] = e
	l.next = (l.next + 1) % len(l.buf)
	if l.count < len(l.buf) {
		l.count++
	}
	l.seq++
}

// newestFirst returns the entries, the newest first.
func (l *logRing) newestFirst() []LogEntry {
	out := make([]LogEntry, 0, l.count)
	for i := 1; i <= l.count; i++ {
		out = append(out, l.buf[(l.next-i+len(l.buf))%len(l.buf)])
	}
	return out
}
