package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/levee-dots/levee/pki"
)

// productionExampleName is the file beside dotsd.yaml that 'dotsd dev'
// writes as the starting point of a production configuration.
const productionExampleName = "dotsd.production-example.yaml"

const productionExample = `# Levee production configuration example, written by 'dotsd dev' for the
# PKI in this directory: copy it, then adapt addresses, prefixes and paths.
#
# Clients are recognised by SPKI pins: a client is the holder of one key, and
# no other certificate acts as that client, whoever issued it. A match by
# common-names or dns-names (as in the development dotsd.yaml) accepts EVERY
# certificate of tls.client-cas that carries the name: anyone who obtains a
# certificate with CN=alpha from one of those CAs acts as alpha. Match by name
# only with a CA that issues client certificates for this server alone, and
# revoke with tls.crl.
#
# The pin of a certificate is the cuid 'dotsd dev' and dotsctl print, or the
# SHA-256 of its key in hex:
#   openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256
signal:
  listen: [%s]
tls:
  certificate: server/cert.pem
  key: server/key.pem
  client-cas: [ca.pem]
  # crl: [clients.crl]            # revocation lists of the client CAs, re-read when they change
store:
  path: /var/lib/levee/levee.db
limits:
  requests-per-second: 100        # per client identity; a gateway may need its own under clients[].limits
  request-burst: 1000
log:
  level: info
  format: json
clients:
%s`

// writeProductionExample writes dir/dotsd.production-example.yaml once,
// matching the development clients by their SPKI pins.
func writeProductionExample(dir string, listen []string, dev *pki.DevPKI) error {
	path := filepath.Join(dir, productionExampleName)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	addrs := make([]string, len(listen))
	for i, l := range listen {
		addrs[i] = fmt.Sprintf("%q", l)
	}
	var clients strings.Builder
	for _, c := range devClients {
		quoted := make([]string, len(c.Prefixes))
		for i, p := range c.Prefixes {
			quoted[i] = fmt.Sprintf("%q", p)
		}
		fmt.Fprintf(&clients, "  - name: %s\n    prefixes: [%s]\n    match:\n      spki-pins: [%q]   # %s\n",
			c.Name, strings.Join(quoted, ", "), dev.Clients[c.Name].CUID, filepath.Join("clients", c.Name, "cert.pem"))
	}
	text := fmt.Sprintf(productionExample, strings.Join(addrs, ", "), clients.String())
	if err := pki.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	return nil
}
