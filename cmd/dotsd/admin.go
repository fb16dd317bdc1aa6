package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/levee-dots/levee/divert/bgp"
	"github.com/levee-dots/levee/divert/dns"
)

// neighborLister is what the admin interface reads from the BGP speaker.
type neighborLister interface {
	Neighbors() []bgp.NeighborStatus
}

// conflictStore is what the admin interface reads from and clears in the
// DNS backend: the restore conflicts an operator has to settle.
type conflictStore interface {
	Conflicts() ([]dns.Conflict, error)
	ClearConflict(name, rrtype string) error
}

// serverInfo is the answer of GET /v1/server: which process serves the
// socket.
type serverInfo struct {
	PID   int    `json:"pid"`
	Store string `json:"store"`
}

// startAdmin serves the local admin interface on a unix socket (0600):
//
//	GET    /v1/server                  pid and store of this process
//	GET    /v1/bgp/neighbors           the BGP sessions (dotsd bgp neighbors)
//	GET    /v1/dns/conflicts           pending DNS restore conflicts (dotsd dns conflicts)
//	DELETE /v1/dns/conflicts/{name}    forget a conflict (?type=A or AAAA; none: both)
//	GET, PUT, DELETE /v1/redirect      redirected signaling (dotsd redirect, redirect.go)
//
// A socket file left by a crash is replaced; a socket another process
// still serves is never touched: startAdmin fails instead (checkSocket).
// Close removes the socket only if the file is still the one this process
// created. store names this server in GET /v1/server; speaker and dnsb may
// be nil when not configured; routes add further endpoints.
func startAdmin(path, store string, speaker *bgp.Backend, dnsb *dns.Backend, log *slog.Logger, routes ...func(*http.ServeMux)) (io.Closer, error) {
	if path == "" {
		return io.NopCloser(nil), nil
	}
	// Typed nil pointers must not become non-nil interfaces.
	var nl neighborLister
	if speaker != nil {
		nl = speaker
	}
	var cs conflictStore
	if dnsb != nil {
		cs = dnsb
	}
	if err := checkSocket(path); err != nil {
		return nil, err
	}
	l, id, err := listenSocket(path)
	if err != nil {
		// As before this check existed: a server that cannot create its
		// socket (a directory that does not exist, a path longer than
		// the 107 bytes unix sockets allow) runs without admin interface.
		log.Warn("admin interface not available", "err", err)
		return io.NopCloser(nil), nil
	}
	info := serverInfo{PID: os.Getpid(), Store: store}
	srv := &http.Server{Handler: newAdminHandler(info, nl, cs, routes...), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin socket", "err", err)
		}
	}()
	return closerFunc(func() error {
		err := srv.Close()
		removeOwnSocket(path, id)
		return err
	}), nil
}

// fileID identifies a file by device and inode, so that a path replaced by
// another process's socket is told apart from the one this process made.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileID{}, nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fi, fmt.Errorf("no device and inode for %s", path)
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, fi, nil
}

// checkSocket makes path free for this server's socket. An existing file
// there is removed only if it is a socket nobody accepts on (left by a
// crash).
//
// If a server answers on it, checkSocket fails and dotsd does not start,
// rather than starting without an admin interface: the configuration names
// this path as this server's admin socket, so `dotsd bgp neighbors
// --config` with it would otherwise silently show the other server's
// state. The operator must stop the other dotsd or give this one its own
// admin.socket.
func checkSocket(path string) error {
	_, fi, err := statID(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin.socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("admin.socket: %s exists and is not a socket; remove it or set admin.socket to another path", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		conn.Close()
		return fmt.Errorf("admin.socket: another dotsd %sserves %s; stop it, or give this server its own admin.socket (and store.path)",
			describeServer(path), path)
	case errors.Is(err, syscall.ECONNREFUSED):
		// Nobody listens: a crashed server's socket.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("admin.socket: removing the stale socket %s: %w", path, err)
		}
		return nil
	default:
		return fmt.Errorf("admin.socket: %s exists and cannot be checked (%v); remove it if no dotsd uses it", path, err)
	}
}

// listenSocket creates the socket (0600) and returns the identity of its
// file.
func listenSocket(path string) (*net.UnixListener, fileID, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fileID{}, fmt.Errorf("admin.socket: %w", err)
	}
	// Close must not unlink by path: the file may be another's by then.
	l.SetUnlinkOnClose(false)
	id, _, err := statID(path)
	if err == nil {
		err = os.Chmod(path, 0o600)
	}
	if err != nil {
		l.Close()
		removeOwnSocket(path, id)
		return nil, fileID{}, fmt.Errorf("admin.socket: %w", err)
	}
	return l, id, nil
}

// removeOwnSocket removes path if it is still the file identified by id.
func removeOwnSocket(path string, id fileID) {
	if got, _, err := statID(path); err == nil && got == id && id != (fileID{}) {
		_ = os.Remove(path)
	}
}

// describeServer asks the server on path who it is, for error messages:
// "(pid 1234, store /var/lib/levee/levee.db) ", or "" if it does not say.
func describeServer(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	body, err := adminRequest(ctx, path, http.MethodGet, "/v1/server")
	if err != nil {
		return ""
	}
	var info serverInfo
	if json.Unmarshal(body, &info) != nil || info.PID == 0 {
		return ""
	}
	return fmt.Sprintf("(pid %d, store %s) ", info.PID, info.Store)
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// newAdminHandler routes the admin API; nl and cs may be nil (not
// configured); routes register further endpoints.
func newAdminHandler(info serverInfo, nl neighborLister, cs conflictStore, routes ...func(*http.ServeMux)) http.Handler {
	mux := http.NewServeMux()
	for _, r := range routes {
		r(mux)
	}
	mux.HandleFunc("GET /v1/server", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, info)
	})
	mux.HandleFunc("GET /v1/bgp/neighbors", func(w http.ResponseWriter, _ *http.Request) {
		if nl == nil {
			http.Error(w, "no BGP speaker is configured (divert.bgp)", http.StatusNotFound)
			return
		}
		writeJSON(w, nl.Neighbors())
	})
	noDNS := func(w http.ResponseWriter) bool {
		if cs == nil {
			http.Error(w, "no DNS diversion is configured (divert.dns)", http.StatusNotFound)
			return true
		}
		return false
	}
	mux.HandleFunc("GET /v1/dns/conflicts", func(w http.ResponseWriter, _ *http.Request) {
		if noDNS(w) {
			return
		}
		list, err := cs.Conflicts()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if list == nil {
			list = []dns.Conflict{} // JSON [] rather than null
		}
		writeJSON(w, list)
	})
	mux.HandleFunc("DELETE /v1/dns/conflicts/{name}", func(w http.ResponseWriter, r *http.Request) {
		if noDNS(w) {
			return
		}
		clearConflict(w, cs, r.PathValue("name"), r.URL.Query().Get("type"))
	})
	return mux
}

// clearConflict answers DELETE /v1/dns/conflicts/{name}: 204 when cleared,
// 400 for a bad type, 404 when nothing is recorded for the name and type.
func clearConflict(w http.ResponseWriter, cs conflictStore, name, rrtype string) {
	rrtype = strings.ToUpper(rrtype)
	if rrtype != "" && rrtype != "A" && rrtype != "AAAA" {
		http.Error(w, fmt.Sprintf("type %q: use A, AAAA, or no type for both", rrtype), http.StatusBadRequest)
		return
	}
	list, err := cs.Conflicts()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	want := mdns.CanonicalName(strings.TrimSpace(name))
	found := false
	for _, c := range list {
		found = found || c.Name == want && (rrtype == "" || c.Type == rrtype)
	}
	if !found {
		what := strings.TrimSpace(want + " " + rrtype)
		http.Error(w, fmt.Sprintf("no restore conflict is recorded for %s (dotsd dns conflicts lists them)", what), http.StatusNotFound)
		return
	}
	if err := cs.ClearConflict(want, rrtype); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// adminRequest sends one request to the admin socket at path and returns
// the body of a 2xx answer; any other answer is an error with the body's
// text.
func adminRequest(ctx context.Context, path, method, target string) ([]byte, error) {
	return adminDo(ctx, path, method, target, nil)
}

// adminDo is adminRequest with a request body (nil: none).
func adminDo(ctx context.Context, path, method, target string, body io.Reader) ([]byte, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}}
	req, err := http.NewRequestWithContext(ctx, method, "http://dotsd"+target, body)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is dotsd running? (admin.socket %s) %w", path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, errors.New(strings.TrimSpace(string(answer)))
	}
	return answer, nil
}

// adminFlags parses the flags common to the admin commands and loads the
// configuration to find the admin socket.
func adminFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (cfg *fileConfig, cfgPath, output string, err error) {
	fs := flag.NewFlagSet("dotsd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file of the running dotsd")
	out := fs.String("o", "table", "table or json")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, "", "", err
	}
	if fs.NArg() > 0 {
		return nil, "", "", fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	if *path == "" {
		return nil, "", "", fmt.Errorf("%s: --config FILE is required (to find the admin socket)", name)
	}
	if *out != "table" && *out != "json" {
		return nil, "", "", fmt.Errorf("%s: -o %q: use table or json", name, *out)
	}
	if cfg, err = loadConfig(*path); err != nil {
		return nil, "", "", err
	}
	if cfg.Admin.Socket == "" {
		return nil, "", "", fmt.Errorf("%s: %s has no admin.socket (and no store.path beside which it would be)", name, *path)
	}
	return cfg, *path, *out, nil
}

// runBGP implements `dotsd bgp neighbors --config FILE [-o json]`.
func runBGP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "neighbors" {
		return errors.New("usage: dotsd bgp neighbors --config FILE [-o json]")
	}
	cfg, _, output, err := adminFlags("bgp neighbors", args[1:], stderr, nil)
	if err != nil {
		return err
	}
	body, err := adminRequest(ctx, cfg.Admin.Socket, http.MethodGet, "/v1/bgp/neighbors")
	if err != nil {
		return fmt.Errorf("bgp neighbors: %w", err)
	}
	if output == "json" {
		_, err := stdout.Write(body)
		return err
	}
	var ns []bgp.NeighborStatus
	if err := json.Unmarshal(body, &ns); err != nil {
		return fmt.Errorf("bgp neighbors: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tAS\tSTATE\tFAMILIES\tRECEIVES\tROUTES")
	for _, n := range ns {
		state := "down"
		if n.Established {
			state = "established"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\n", n.Name, n.Address, n.PeerAS, state,
			strings.Join(n.Negotiated, ","), strings.Join(n.Receives, ","), n.Routes)
	}
	return tw.Flush()
}

const dnsUsage = "usage: dotsd dns conflicts --config FILE [-o json] [--clear NAME [--type A|AAAA]]"

// runDNS implements `dotsd dns conflicts --config FILE [-o json]
// [--clear NAME [--type A|AAAA]]`.
func runDNS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "conflicts" {
		return errors.New(dnsUsage)
	}
	var clear, rrtype string
	cfg, cfgPath, output, err := adminFlags("dns conflicts", args[1:], stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&clear, "clear", "", "forget the restore conflict of this name (the records in DNS are not touched)")
		fs.StringVar(&rrtype, "type", "", "with --clear: only this type, A or AAAA (default both)")
	})
	if err != nil {
		return err
	}
	if rrtype != "" && clear == "" {
		return errors.New("dns conflicts: --type needs --clear NAME")
	}
	if t := strings.ToUpper(rrtype); t != "" && t != "A" && t != "AAAA" {
		return fmt.Errorf("dns conflicts: --type %q: use A or AAAA (or leave it out for both)", rrtype)
	}
	if clear != "" {
		target := "/v1/dns/conflicts/" + url.PathEscape(clear)
		if rrtype != "" {
			target += "?type=" + url.QueryEscape(strings.ToUpper(rrtype))
		}
		if _, err := adminRequest(ctx, cfg.Admin.Socket, http.MethodDelete, target); err != nil {
			return fmt.Errorf("dns conflicts: %w", err)
		}
		fmt.Fprintf(stdout, "cleared the restore conflict of %s (the records in DNS are unchanged)\n",
			strings.TrimSpace(mdns.CanonicalName(clear)+" "+strings.ToUpper(rrtype)))
		return nil
	}
	body, err := adminRequest(ctx, cfg.Admin.Socket, http.MethodGet, "/v1/dns/conflicts")
	if err != nil {
		return fmt.Errorf("dns conflicts: %w", err)
	}
	if output == "json" {
		_, err := stdout.Write(body)
		return err
	}
	var cs []dns.Conflict
	if err := json.Unmarshal(body, &cs); err != nil {
		return fmt.Errorf("dns conflicts: %w", err)
	}
	return printConflicts(stdout, cs, cfgPath)
}

func printConflicts(w io.Writer, cs []dns.Conflict, cfgPath string) error {
	if len(cs) == 0 {
		_, err := fmt.Fprintln(w, "no DNS restore conflicts: every diverted name that ended was restored")
		return err
	}
	none := func(s []string) string {
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, ",")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tZONE\tFOUND (KEPT)\tDIVERTED\tORIGINAL (NOT RESTORED)\tSINCE\tMITIGATION")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s/%d\n", c.Name, c.Type, c.Zone, none(c.Found), none(c.Diverted),
			none(c.Original), c.Since.UTC().Format(time.RFC3339), c.CUID, c.MID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "settle the records in DNS, then: dotsd dns conflicts --config %s --clear NAME [--type A|AAAA]\n", cfgPath)
	return err
}
