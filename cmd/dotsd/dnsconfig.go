package main

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/levee-dots/levee/divert/dns"
)

// dnsFileConfig is the divert.dns section; see divert/dns/README.md.
type dnsFileConfig struct {
	TTL     uint32        `yaml:"ttl"`
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
	Backoff time.Duration `yaml:"backoff"`
	// RestoreOnShutdown puts the original records back when dotsd stops
	// (SIGTERM); by default a diversion outlives a stop and the restarted
	// server reconciles it from the store.
	RestoreOnShutdown bool `yaml:"restore-on-shutdown"`
	Zones             []struct {
		Name            string              `yaml:"name"`
		Primary         string              `yaml:"primary"`
		KeyName         string              `yaml:"key-name"`
		SecretFile      string              `yaml:"secret-file"`
		Scrubbing       []string            `yaml:"scrubbing"`
		ClientScrubbing map[string][]string `yaml:"client-scrubbing"`
		Clients         map[string][]string `yaml:"clients"`
		Prefixes        map[string][]string `yaml:"prefixes"`
	} `yaml:"zones"`
}

// build turns the section into dns.Config, reading the TSIG secrets
// (relative paths are relative to the configuration file's directory).
func (c *dnsFileConfig) build(base string) (dns.Config, error) {
	out := dns.Config{TTL: c.TTL, Timeout: c.Timeout, Retries: c.Retries, Backoff: c.Backoff}
	addrs := func(key string, in []string) ([]netip.Addr, error) {
		var as []netip.Addr
		for i, s := range in {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("divert.dns.%s[%d]: %q is not an IP address", key, i, s)
			}
			as = append(as, a)
		}
		return as, nil
	}
	for i, z := range c.Zones {
		key := fmt.Sprintf("zones[%d]", i)
		if z.SecretFile == "" {
			return out, fmt.Errorf("divert.dns.%s.secret-file: the TSIG secret file is required", key)
		}
		path := z.SecretFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(base, path)
		}
		secret, err := dns.ReadSecret(path)
		if err != nil {
			return out, fmt.Errorf("divert.dns.%s.secret-file: %w", key, err)
		}
		zone := dns.Zone{Name: z.Name, Primary: z.Primary, KeyName: z.KeyName, Secret: secret, Clients: z.Clients}
		if zone.Scrubbing, err = addrs(key+".scrubbing", z.Scrubbing); err != nil {
			return out, err
		}
		if len(z.ClientScrubbing) > 0 {
			zone.ClientScrubbing = map[string][]netip.Addr{}
			for client, list := range z.ClientScrubbing {
				if zone.ClientScrubbing[client], err = addrs(key+".client-scrubbing."+client, list); err != nil {
					return out, err
				}
			}
		}
		if len(z.Prefixes) > 0 {
			zone.Prefixes = map[netip.Prefix][]string{}
			for p, names := range z.Prefixes {
				pfx, err := netip.ParsePrefix(p)
				if err != nil {
					return out, fmt.Errorf("divert.dns.%s.prefixes: %q is not a prefix", key, p)
				}
				zone.Prefixes[pfx] = names
			}
		}
		out.Zones = append(out.Zones, zone)
	}
	if err := out.Validate(); err != nil {
		return out, fmt.Errorf("divert.dns: %w", err)
	}
	return out, nil
}
