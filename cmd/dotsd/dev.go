package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/levee-dots/levee/pki"
)

// Development client domains (documentation prefixes, RFC 5737 / RFC 3849).
var devClients = []clientConfig{
	devClient("alpha", "203.0.113.0/25", "2001:db8:6401::/48"),
	devClient("beta", "203.0.113.128/25", "2001:db8:6402::/48"),
}

func devClient(name string, prefixes ...string) clientConfig {
	c := clientConfig{Name: name, Prefixes: prefixes}
	c.Match.CommonNames = []string{name}
	return c
}

const devConfig = `# Levee development server, written by 'dotsd dev'. Paths are relative to this file.
# Clients are matched by certificate CN, which suits a development CA only:
# see dotsd.production-example.yaml (SPKI pins) for a production server.
signal:
  listen: ["127.0.0.1:4646"]
tls:
  certificate: server/cert.pem
  key: server/key.pem
  client-cas: [ca.pem]
store:
  path: levee.db
policy:
  allow-indefinite-lifetime: true
log:
  level: info
clients:
%s`

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dotsd dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for the development PKI, configuration and database")
	listen := fs.String("signal-listen", "", "signal-channel address (default 127.0.0.1:4646)")
	dashListen := fs.String("dashboard-listen", devDashboardListen, "web dashboard address, or off")
	dataListen := fs.String("data-listen", "", "data-channel (RFC 8783) address, or off (default "+devDataListen+")")
	metricsListen := fs.String("metrics-listen", "", "Prometheus /metrics address (default 127.0.0.1:9464; \"off\": none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("dev: unexpected argument %q", fs.Arg(0))
	}
	if *dir == "" {
		return fmt.Errorf("dev: --dir DIR is required, e.g. dotsd dev --dir var/dev")
	}
	names := make([]string, len(devClients))
	for i, c := range devClients {
		names[i] = c.Name
	}
	cfgPath := filepath.Join(*dir, "dotsd.yaml")
	if _, err := os.Stat(cfgPath); os.IsNotExist(err) {
		if err := pki.WriteFile(cfgPath, []byte(fmt.Sprintf(devConfig, devClientsYAML())), 0o644); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		if !isHostPort(*listen) {
			return fmt.Errorf("dev: --signal-listen %q is not host:port with a port 1-65535 (IPv6 as [::1]:4646)", *listen)
		}
		cfg.Signal.Listen, cfg.listenFlag = []string{*listen}, true
	}
	if err := applyDevDataListen(cfg, *dataListen); err != nil {
		return err
	}
	if err := devMetrics(&cfg.Metrics, *metricsListen); err != nil {
		return err
	}
	dev, err := pki.Dev(*dir, names, serverHosts(cfg.listenAddrs())...)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if len(dev.ServerReissued) > 0 {
		fmt.Fprintf(stderr, "dotsd dev: the server certificate did not cover %s; reissued %s from the existing CA (the CA and the client identities are kept)\n",
			strings.Join(dev.ServerReissued, ", "), dev.ServerCert)
	}
	if err := writeProductionExample(*dir, cfg.Signal.Listen, dev); err != nil {
		return err
	}
	for _, name := range names {
		c := dev.Clients[name]
		ctl := fmt.Sprintf("# dotsctl configuration of development client %q (cuid %s), written by 'dotsd dev'.\nservers: [%q]\n%scertificate: cert.pem\nkey: key.pem\nca: ../../ca.pem\nstate: state.json\n",
			name, c.CUID, cfg.Signal.Listen[0], ctlDataLine(cfg))
		if err := pki.WriteFile(filepath.Join(filepath.Dir(c.Cert), "dotsctl.yaml"), []byte(ctl), 0o644); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}
	fmt.Fprintf(stdout, "development server in %s\n  config: %s (clients matched by CN)\n  production example: %s (clients matched by SPKI pin)\n  CA:     %s\n",
		*dir, cfgPath, filepath.Join(*dir, productionExampleName), dev.CAPath)
	if cfg.Data.Listen != "" {
		fmt.Fprintf(stdout, "  data channel: %s (RFC 8783)\n", dataURL(cfg.Data.Listen))
	}
	for _, name := range names {
		c := dev.Clients[name]
		fmt.Fprintf(stdout, "  client %-6s cuid %s  dotsctl --config %s\n", name, c.CUID, filepath.Join(filepath.Dir(c.Cert), "dotsctl.yaml"))
	}
	if err := devDashboard(cfg, *dir, *dashListen, flagSet(fs, "dashboard-listen"), stdout); err != nil {
		return err
	}
	if cfg.Metrics.Listen != "" {
		fmt.Fprintf(stdout, "  metrics: http://%s/metrics (Prometheus)\n", cfg.Metrics.Listen)
	}
	return serve(ctx, cfg, stderr)
}

// serverHosts returns the hosts the development server certificate must
// cover for the listen addresses: each address's host, or for an address
// on all interfaces (":4646", "0.0.0.0:4646", "[::]:4646") every address of
// this host's interfaces at the time of the call.
func serverHosts(listen []string) []string {
	var out []string
	for _, l := range listen {
		host, _, err := net.SplitHostPort(l)
		if err != nil {
			continue
		}
		host, _, _ = strings.Cut(host, "%") // IPv6 zone
		if ip, err := netip.ParseAddr(host); host != "" && (err != nil || !ip.IsUnspecified()) {
			out = append(out, host)
			continue
		}
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLinkLocalUnicast() {
				out = append(out, p.Addr().String())
			}
		}
	}
	return out
}

func devClientsYAML() string {
	out := ""
	for _, c := range devClients {
		out += fmt.Sprintf("  - name: %s\n    prefixes: [%q, %q]\n    match:\n      common-names: [%s]\n", c.Name, c.Prefixes[0], c.Prefixes[1], c.Name)
	}
	return out
}
