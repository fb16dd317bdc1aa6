package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/levee-dots/levee/pki"
)

// runCheckConfig validates a configuration without starting anything: the
// file itself (keys, types, values, as at startup) and every file it names
// (certificate and key, client CAs, CRLs, PSK keys, the scrubbing nodes'
// credentials). Certificates outside their validity period are errors;
// those ending within pki.ExpiryWarning are reported as warnings. Nothing
// is opened for writing and no socket is touched, so it runs beside a live
// dotsd (before a SIGHUP, or in a deployment pipeline).
func runCheckConfig(args []string, stdout, stderr io.Writer, now time.Time) error {
	fs := flag.NewFlagSet("dotsd check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (or give it as the argument)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := *cfgPath
	switch {
	case path == "" && fs.NArg() == 1:
		path = fs.Arg(0)
	case fs.NArg() > 0:
		return fmt.Errorf("check-config: unexpected argument %q: give one configuration file", fs.Arg(fs.NArg()-1))
	case path == "":
		return errors.New("check-config: name the configuration file: dotsd check-config FILE")
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	warnings, err := cfg.checkFiles(now)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stdout, "%s: warning: %s\n", path, w)
	}
	fmt.Fprintf(stdout, "%s: configuration valid: %s\n", path, cfg.summary())
	return nil
}

// checkFiles loads every file the configuration names, as serve would,
// and checks the certificates' validity periods at now.
func (c *fileConfig) checkFiles(now time.Time) (warnings []string, err error) {
	var expired []string
	check := func(what string, certs ...*x509.Certificate) {
		for _, cert := range certs {
			msg := pki.Expiry(what, cert, now)
			switch {
			case msg == "":
			case now.After(cert.NotAfter) || now.Before(cert.NotBefore):
				expired = append(expired, msg)
			default:
				warnings = append(warnings, msg)
			}
		}
	}
	_, leaf, err := pki.LoadKeyPair(c.TLS.Certificate, c.TLS.Key)
	if err != nil {
		return nil, fmt.Errorf("tls.certificate: %w", err)
	}
	check("tls.certificate "+c.TLS.Certificate, leaf)
	if len(c.TLS.ClientCAs) == 0 {
		return nil, errors.New("tls.client-cas: at least one CA file is needed")
	}
	for _, p := range c.TLS.ClientCAs {
		cas, err := pki.LoadCerts("CA certificate", p)
		if err != nil {
			return nil, fmt.Errorf("tls.client-cas: %w", err)
		}
		check("tls.client-cas "+p, cas...)
	}
	if _, err := c.crl(); err != nil {
		return nil, err
	}
	if sc := c.Divert.Scrub; sc != nil {
		_, leaf, err := pki.LoadKeyPair(sc.Certificate, sc.Key)
		if err != nil {
			return nil, fmt.Errorf("divert.scrub.certificate: %w", err)
		}
		check("divert.scrub.certificate "+sc.Certificate, leaf)
		for i, n := range sc.Nodes {
			cas, err := pki.LoadCerts("CA certificate", n.CA)
			if err != nil {
				return nil, fmt.Errorf("divert.scrub.nodes[%d].ca: %w", i, err)
			}
			check(fmt.Sprintf("divert.scrub.nodes[%d].ca %s", i, n.CA), cas...)
		}
	}
	if err := c.checkDashboardFiles(check); err != nil {
		return nil, err
	}
	if c.TLS.KeyLog != "" {
		warnings = append(warnings, "tls.key-log "+c.TLS.KeyLog+": the secrets of every DTLS and TLS session will be written there, for debugging only")
	}
	if len(expired) > 0 {
		return warnings, errors.New(strings.Join(expired, "; "))
	}
	return warnings, nil
}

// summary is one line on what the configuration sets up.
func (c *fileConfig) summary() string {
	var backends []string
	if b := c.Divert.BGP; b != nil {
		backends = append(backends, fmt.Sprintf("bgp (%d neighbors)", len(b.Neighbors)))
	}
	if c.dns != nil {
		backends = append(backends, "dns")
	}
	if sc := c.Divert.Scrub; sc != nil {
		backends = append(backends, fmt.Sprintf("scrubbing (%d nodes)", len(sc.Nodes)))
	}
	if len(backends) == 0 {
		backends = append(backends, "none (requests are stored, nothing is diverted)")
	}
	return fmt.Sprintf("%d clients, signal on %s, store %s, backends: %s",
		len(c.Clients), strings.Join(c.Signal.Listen, " "), c.Store.Path, strings.Join(backends, ", "))
}
