package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"time"

	"github.com/levee-dots/levee/datachannel"
	"github.com/levee-dots/levee/dotsserver"
	"github.com/levee-dots/levee/service"
)

// dataConfig is the data: section, the RFC 8783 data channel (package
// datachannel). It is off unless listen is set.
type dataConfig struct {
	Listen string `yaml:"listen"` // host:port of the HTTPS listener
}

// devDataListen is where 'dotsd dev' serves the data channel by default.
const devDataListen = "127.0.0.1:8443"

func (c *fileConfig) validateData(bad func(key, format string, args ...any) error) error {
	if c.Data.Listen == "" {
		return nil
	}
	if !isHostPort(c.Data.Listen) {
		return bad("data.listen", "%q is not host:port with a port 1-65535 (IPv6 as [::1]:8443)", c.Data.Listen)
	}
	for _, s := range c.Signal.Listen {
		if sameTCPPort(s, c.Data.Listen) {
			return bad("data.listen", "%q takes the TCP port of signal.listen %q (the signal channel serves TLS on TCP too)", c.Data.Listen, s)
		}
	}
	return nil
}

// sameTCPPort reports whether two host:port listeners would bind the same
// TCP port: the same port on the same host, or with either on all
// interfaces.
func sameTCPPort(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb {
		return false
	}
	any := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || any(ha) || any(hb)
}

// applyDevDataListen applies dotsd dev's --data-listen: an address, off, or
// (empty) the configuration's data.listen, else devDataListen.
func applyDevDataListen(cfg *fileConfig, flag string) error {
	switch {
	case flag == "off":
		cfg.Data.Listen = ""
	case flag != "":
		if !isHostPort(flag) {
			return fmt.Errorf("dev: --data-listen %q is not host:port with a port 1-65535 (IPv6 as [::1]:8443), or off", flag)
		}
		cfg.Data.Listen = flag
	case cfg.Data.Listen == "":
		cfg.Data.Listen = devDataListen
	}
	return nil
}

// listenAddrs are the signal-channel and data-channel addresses.
func (c *fileConfig) listenAddrs() []string {
	out := slices.Clone(c.Signal.Listen)
	if c.Data.Listen != "" {
		out = append(out, c.Data.Listen)
	}
	return out
}

// ctlDataLine is the data-channel line of a development dotsctl.yaml ("" when off).
func ctlDataLine(cfg *fileConfig) string {
	if cfg.Data.Listen == "" {
		return ""
	}
	return "data-channel: " + dataURL(cfg.Data.Listen) + "\n"
}

// dataURL is the data channel's URL for clients (dotsctl.yaml data-channel).
func dataURL(listen string) string {
	return (&url.URL{Scheme: "https", Host: listen}).String()
}

// startData starts the data channel when data.listen is set (nil
// otherwise), with the signal channel's certificate, client CAs, client
// domains and revocation lists.
func startData(cfg *fileConfig, svc *service.Service, signal *dotsserver.Server, cert tls.Certificate, cas *x509.CertPool, observe func(string, int, time.Duration), log *slog.Logger) (*datachannel.Server, error) {
	if cfg.Data.Listen == "" {
		return nil, nil
	}
	srv, err := datachannel.New(datachannel.Options{Logger: log, Service: svc, Certificate: cert, ClientCAs: cas,
		CurrentClientCAs: signal.ClientCAs, Observe: observe,
		Identify: func(c *x509.Certificate) (datachannel.Identity, error) {
			id, err := signal.IdentifyCertificate(c)
			return datachannel.Identity{CUID: id.CUID, SPKI: id.SPKI, Domain: id.Domain}, err
		}})
	if err != nil {
		return nil, err
	}
	if err := srv.Listen(cfg.Data.Listen); err != nil {
		return nil, err
	}
	return srv, nil
}
