package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/levee-dots/levee/dotsserver"
)

// redirectState is the body of the admin API's /v1/redirect: the
// redirect in force (RFC 9132 §4.6), or the one to set.
type redirectState struct {
	AltServer       string   `json:"alt-server"`
	AltServerRecord []string `json:"alt-server-record,omitempty"`
	// TTL is in seconds, as sent in Max-Age; 4294967295: until cleared.
	TTL     uint32     `json:"ttl"`
	Clients []string   `json:"clients,omitempty"`
	Expires *time.Time `json:"expires,omitempty"` // answers only; none: until cleared
}

func (st redirectState) redirect() (dotsserver.Redirect, error) {
	r := dotsserver.Redirect{AltServer: st.AltServer, TTL: time.Duration(st.TTL) * time.Second, Clients: st.Clients}
	for _, s := range st.AltServerRecord {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return r, fmt.Errorf("alt-server-record %q is not an IP address", s)
		}
		r.AltServerRecord = append(r.AltServerRecord, a)
	}
	return r, r.Validate()
}

func stateOf(r dotsserver.Redirect, expires time.Time) redirectState {
	st := redirectState{AltServer: r.AltServer, TTL: uint32(r.TTL / time.Second), Clients: r.Clients}
	for _, a := range r.AltServerRecord {
		st.AltServerRecord = append(st.AltServerRecord, a.String())
	}
	if !expires.IsZero() {
		e := expires.UTC()
		st.Expires = &e
	}
	return st
}

// redirectAdmin serves /v1/redirect for the signal-channel server, which
// exists only after the admin socket is up (set).
type redirectAdmin struct {
	srv atomic.Pointer[dotsserver.Server]
}

func (ra *redirectAdmin) set(s *dotsserver.Server) { ra.srv.Store(s) }

// routes registers
//
//	GET    /v1/redirect   the redirect in force (404: none)
//	PUT    /v1/redirect   redirect clients (a redirectState)
//	DELETE /v1/redirect   stop redirecting (404: none was in force)
func (ra *redirectAdmin) routes(mux *http.ServeMux) {
	server := func(w http.ResponseWriter) *dotsserver.Server {
		s := ra.srv.Load()
		if s == nil {
			http.Error(w, "the signal channel is not started yet; try again in a moment", http.StatusServiceUnavailable)
		}
		return s
	}
	mux.HandleFunc("GET /v1/redirect", func(w http.ResponseWriter, _ *http.Request) {
		if s := server(w); s != nil {
			writeRedirect(w, s)
		}
	})
	mux.HandleFunc("PUT /v1/redirect", func(w http.ResponseWriter, r *http.Request) {
		s := server(w)
		if s == nil {
			return
		}
		var st redirectState
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			http.Error(w, "the body is not a redirect: "+err.Error(), http.StatusBadRequest)
			return
		}
		rd, err := st.redirect()
		if err == nil {
			err = s.SetRedirect(rd)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeRedirect(w, s)
	})
	mux.HandleFunc("DELETE /v1/redirect", func(w http.ResponseWriter, _ *http.Request) {
		s := server(w)
		if s == nil {
			return
		}
		if !s.ClearRedirect() {
			http.Error(w, "no redirect is in force", http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func writeRedirect(w http.ResponseWriter, s *dotsserver.Server) {
	r, expires, ok := s.CurrentRedirect()
	if !ok {
		http.Error(w, "no redirect is in force (dotsd redirect --to NAME sets one)", http.StatusNotFound)
		return
	}
	writeJSON(w, stateOf(r, expires))
}

const redirectUsage = "usage: dotsd redirect --config FILE [--to NAME [--to ADDR]... [--ttl DURATION|forever] [--clients CUID,...] | --clear] [-o json]"

// redirectArgs are the flags of `dotsd redirect`.
type redirectArgs struct {
	to             []string
	ttl, clients   string
	clear          bool
	ttlSet, cliSet bool
}

// runRedirect implements `dotsd redirect`: with --to it sends clients to
// an alternate server (RFC 9132 §4.6), with --clear it stops, and with
// neither it shows the redirect in force.
func runRedirect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var a redirectArgs
	cfg, cfgPath, output, err := adminFlags("redirect", args, stderr, func(fs *flag.FlagSet) {
		fs.Func("to", "the alternate server's name, then (repeated) its addresses", func(v string) error {
			a.to = append(a.to, v)
			return nil
		})
		fs.Func("ttl", "how long clients use the alternate server: a duration, or forever (until --clear); default 1h", func(v string) error {
			a.ttl, a.ttlSet = v, true
			return nil
		})
		fs.Func("clients", "redirect only these clients (cuids, comma-separated); default all", func(v string) error {
			a.clients, a.cliSet = v, true
			return nil
		})
		fs.BoolVar(&a.clear, "clear", false, "stop redirecting")
	})
	if err != nil {
		return err
	}
	sock := cfg.Admin.Socket
	switch {
	case a.clear && (len(a.to) > 0 || a.ttlSet || a.cliSet):
		return errors.New("redirect: --clear takes no --to, --ttl or --clients")
	case a.clear:
		if _, err := adminRequestBody(ctx, sock, http.MethodDelete, "/v1/redirect", nil); err != nil {
			return fmt.Errorf("redirect: %w", err)
		}
		_, err := fmt.Fprintln(stdout, "redirect cleared: clients are served here again")
		return err
	case len(a.to) == 0 && (a.ttlSet || a.cliSet):
		return errors.New("redirect: --ttl and --clients need --to NAME (the alternate server)")
	case len(a.to) == 0:
		body, err := adminRequestBody(ctx, sock, http.MethodGet, "/v1/redirect", nil)
		if err != nil {
			return fmt.Errorf("redirect: %w", err)
		}
		return printRedirect(stdout, body, output, cfgPath)
	}
	st, err := a.state()
	if err != nil {
		return fmt.Errorf("redirect: %w", err)
	}
	req, _ := json.Marshal(st)
	body, err := adminRequestBody(ctx, sock, http.MethodPut, "/v1/redirect", req)
	if err != nil {
		return fmt.Errorf("redirect: %w", err)
	}
	return printRedirect(stdout, body, output, cfgPath)
}

// state checks the flags and says what to fix.
func (a redirectArgs) state() (redirectState, error) {
	var st redirectState
	for _, v := range a.to {
		if addr, err := netip.ParseAddr(v); err == nil {
			st.AltServerRecord = append(st.AltServerRecord, addr.String())
			continue
		}
		if st.AltServer != "" {
			return st, fmt.Errorf("--to %s and --to %s: give one name (further --to are its addresses)", st.AltServer, v)
		}
		st.AltServer = v
	}
	if st.AltServer == "" {
		return st, fmt.Errorf("--to %s is an address: name the alternate server too (--to NAME, then its addresses as --to ADDR); a redirect must carry its name (alt-server, RFC 9132 §4.6)", a.to[0])
	}
	st.TTL = 3600
	if a.ttlSet {
		ttl, err := parseRedirectTTL(a.ttl)
		if err != nil {
			return st, err
		}
		st.TTL = ttl
	}
	if a.cliSet {
		for _, c := range strings.Split(a.clients, ",") {
			if c = strings.TrimSpace(c); c == "" {
				return st, fmt.Errorf("--clients %q: an empty cuid; list cuids separated by commas", a.clients)
			}
			st.Clients = append(st.Clients, c)
		}
	}
	if _, err := st.redirect(); err != nil {
		return st, fmt.Errorf("--to: %w", err)
	}
	return st, nil
}

// parseRedirectTTL reads --ttl: whole seconds from 1s, or forever.
func parseRedirectTTL(v string) (uint32, error) {
	if v == "forever" {
		return math.MaxUint32, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second || d%time.Second != 0 || d >= dotsserver.RedirectForever {
		return 0, fmt.Errorf("--ttl %q: use whole seconds from 1s, as 90s or 2h, or forever (until --clear)", v)
	}
	return uint32(d / time.Second), nil
}

func printRedirect(w io.Writer, body []byte, output, cfgPath string) error {
	if output == "json" {
		_, err := w.Write(body)
		return err
	}
	var st redirectState
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("redirect: %w", err)
	}
	none := func(s []string, empty string) string {
		if len(s) == 0 {
			return empty
		}
		return strings.Join(s, ",")
	}
	ttl, until := "forever", "cleared"
	if st.TTL != math.MaxUint32 {
		ttl = (time.Duration(st.TTL) * time.Second).String()
	}
	if st.Expires != nil {
		until = st.Expires.Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALT-SERVER\tADDRESSES\tTTL\tUNTIL\tCLIENTS")
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.AltServer, none(st.AltServerRecord, "-"), ttl, until, none(st.Clients, "all"))
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "to stop: dotsd redirect --config %s --clear\n", cfgPath)
	return err
}

// adminRequestBody is adminRequest with a JSON request body (nil: none).
func adminRequestBody(ctx context.Context, path, method, target string, body []byte) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	return adminDo(ctx, path, method, target, r)
}

// redirectConfig is signal.redirect-to: the alternate server of
// signal.redirect-when-sessions-over.
type redirectConfig struct {
	AltServer       string        `yaml:"alt-server"`
	AltServerRecord []string      `yaml:"alt-server-record"`
	TTL             time.Duration `yaml:"ttl"` // default 1h
}

func (c *fileConfig) validateRedirect(bad func(key, format string, args ...any) error) error {
	over, to := c.Signal.RedirectWhenSessionsOver, c.Signal.RedirectTo
	switch {
	case over < 0:
		return bad("signal.redirect-when-sessions-over", "%d: must be at least 1", over)
	case over > 0 && to == nil:
		return bad("signal.redirect-to", "signal.redirect-when-sessions-over needs the alternate server: redirect-to: {alt-server: NAME}")
	case over == 0 && to != nil:
		return bad("signal.redirect-when-sessions-over", "signal.redirect-to is set but no session is sent there: set the number of sessions over which new ones are redirected")
	case to == nil:
		return nil
	}
	for i, s := range to.AltServerRecord {
		if _, err := netip.ParseAddr(s); err != nil {
			return bad(fmt.Sprintf("signal.redirect-to.alt-server-record[%d]", i), "%q is not an IP address like 192.0.2.7 or 2001:db8::7", s)
		}
	}
	if to.TTL < 0 {
		return bad("signal.redirect-to.ttl", "%v: must be at least 1s", to.TTL)
	}
	if err := c.sessionRedirect().Validate(); err != nil {
		return bad("signal.redirect-to", "%v", err)
	}
	return nil
}

// sessionRedirect is the server's SessionRedirect (nil: none).
func (c *fileConfig) sessionRedirect() *dotsserver.SessionRedirect {
	to := c.Signal.RedirectTo
	if c.Signal.RedirectWhenSessionsOver <= 0 || to == nil {
		return nil
	}
	sr := &dotsserver.SessionRedirect{Over: c.Signal.RedirectWhenSessionsOver,
		Redirect: dotsserver.Redirect{AltServer: to.AltServer, TTL: to.TTL}}
	if sr.TTL == 0 {
		sr.TTL = time.Hour
	}
	for _, s := range to.AltServerRecord {
		if a, err := netip.ParseAddr(s); err == nil {
			sr.AltServerRecord = append(sr.AltServerRecord, a)
		}
	}
	return sr
}
