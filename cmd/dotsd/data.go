package main

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/url"

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
	if c.Data.Listen != "" && !isHostPort(c.Data.Listen) {
		return bad("data.listen", "%q is not host:port with a port 1-65535 (IPv6 as [::1]:8443)", c.Data.Listen)
	}
	return nil
}

// dataURL is the data channel's URL for clients (dotsctl.yaml data-channel).
func dataURL(listen string) string {
	return (&url.URL{Scheme: "https", Host: listen}).String()
}

// startData starts the data channel when data.listen is set (nil
// otherwise), with the signal channel's certificate, client CAs, client
// domains and revocation lists.
func startData(cfg *fileConfig, svc *service.Service, signal *dotsserver.Server, cert tls.Certificate, cas *x509.CertPool, log *slog.Logger) (*datachannel.Server, error) {
	if cfg.Data.Listen == "" {
		return nil, nil
	}
	srv, err := datachannel.New(datachannel.Options{Logger: log, Service: svc, Certificate: cert, ClientCAs: cas,
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
