package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/levee-dots/levee/divert/bgp"
)

// startAdmin serves the local admin interface on a unix socket (0600):
// GET /v1/bgp/neighbors. It is how `dotsd bgp neighbors` reads the state of
// the running server.
func startAdmin(path string, speaker *bgp.Backend, log *slog.Logger) (io.Closer, error) {
	if path == "" {
		return io.NopCloser(nil), nil
	}
	_ = os.Remove(path) // a socket left by a crash
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin.socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin.socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/bgp/neighbors", func(w http.ResponseWriter, _ *http.Request) {
		if speaker == nil {
			http.Error(w, "no BGP speaker is configured (divert.bgp)", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(speaker.Neighbors())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin socket", "err", err)
		}
	}()
	return closerFunc(func() error { defer os.Remove(path); return srv.Close() }), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// runBGP implements `dotsd bgp neighbors --config FILE [-o json]`.
func runBGP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "neighbors" {
		return errors.New("usage: dotsd bgp neighbors --config FILE [-o json]")
	}
	fs := flag.NewFlagSet("dotsd bgp neighbors", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file of the running dotsd")
	output := fs.String("o", "table", "table or json")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *cfgPath == "" {
		return errors.New("bgp neighbors: --config FILE is required (to find the admin socket)")
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", cfg.Admin.Socket)
		}}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://dotsd/v1/bgp/neighbors", nil)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("bgp neighbors: is dotsd running? %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bgp neighbors: %s", strings.TrimSpace(string(body)))
	}
	if *output == "json" {
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
