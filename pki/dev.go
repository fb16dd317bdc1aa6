package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Validity periods and names used by Dev.
const (
	devCAValidity   = 10 * 365 * 24 * time.Hour
	devLeafValidity = 2 * 365 * 24 * time.Hour
	devCACommonName = "levee development CA"
)

// DevPKI describes the files of a development PKI provisioned by Dev.
type DevPKI struct {
	Dir, CAPath, CAKeyPath, ServerCert, ServerKey string
	Clients                                       map[string]DevClient
	// ServerReissued lists the requested server hosts that the existing
	// server certificate did not cover, for which Dev reissued it from the
	// existing CA (nil when the certificate was reused or newly created).
	ServerReissued []string
}

// DevClient describes one client of a development PKI.
type DevClient struct {
	Name, Cert, Key, CUID string
}

// Dev provisions a development PKI in dir, once: if dir/ca.pem already exists
// it loads and reuses everything that exists and only creates what is missing.
// It writes dir/ca.pem, dir/ca-key.pem (0600), dir/server/cert.pem,
// dir/server/key.pem (0600) valid for "localhost", 127.0.0.1, ::1 and each
// of serverHosts (IP addresses or DNS names, without port), and for each
// name in clients: dir/clients/NAME/cert.pem and key.pem (0600). Returns a
// DevPKI describing paths and each client's cuid.
//
// An existing server certificate that does not cover every one of
// serverHosts is reissued (new key) from the existing CA, for the names and
// addresses it had plus the missing ones; the CA and the clients are kept.
// DevPKI.ServerReissued then names the hosts that were missing.
//
// When ca.pem is absent a new CA is created and every leaf is (re)issued,
// since leftovers cannot chain to the new CA. When ca.pem exists, ca-key.pem
// must exist too; an existing leaf is reused only if its key matches and it
// was signed by the CA, and a leaf whose certificate or key alone is missing
// is an error (remove the other file to have it reissued). Client names may
// contain only letters, digits, '.', '-' and '_', and may not start with '.'
// or '-'.
func Dev(dir string, clients []string, serverHosts ...string) (*DevPKI, error) {
	for _, name := range clients {
		if err := checkClientName(name); err != nil {
			return nil, err
		}
	}
	dnsNames, ips, err := serverSANs(serverHosts)
	if err != nil {
		return nil, err
	}
	p := &DevPKI{
		Dir:        dir,
		CAPath:     filepath.Join(dir, "ca.pem"),
		CAKeyPath:  filepath.Join(dir, "ca-key.pem"),
		ServerCert: filepath.Join(dir, "server", "cert.pem"),
		ServerKey:  filepath.Join(dir, "server", "key.pem"),
		Clients:    make(map[string]DevClient, len(clients)),
	}
	ca, fresh, err := p.loadOrCreateCA()
	if err != nil {
		return nil, err
	}
	if err := p.ensureServer(ca, fresh, dnsNames, ips, serverHosts); err != nil {
		return nil, err
	}
	for _, name := range clients {
		c := DevClient{
			Name: name,
			Cert: filepath.Join(dir, "clients", name, "cert.pem"),
			Key:  filepath.Join(dir, "clients", name, "key.pem"),
		}
		leaf, err := p.ensureLeaf(ca, fresh, c.Cert, c.Key, func() ([]byte, []byte, error) {
			return ca.IssueClient(name, devLeafValidity)
		})
		if err != nil {
			return nil, err
		}
		c.CUID = CUID(leaf)
		p.Clients[name] = c
	}
	return p, nil
}

// serverSANs returns the names and addresses of the development server
// certificate: the loopback ones and hosts.
func serverSANs(hosts []string) ([]string, []net.IP, error) {
	dnsNames := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = appendIP(ips, ip)
			continue
		}
		if err := checkServerName(h); err != nil {
			return nil, nil, err
		}
		dnsNames = appendName(dnsNames, h)
	}
	return dnsNames, ips, nil
}

// ensureServer provides the server certificate for dnsNames and ips, and
// reissues an existing one that does not cover every one of hosts, for
// what it covered plus those (setting p.ServerReissued).
func (p *DevPKI) ensureServer(ca *CA, fresh bool, dnsNames []string, ips []net.IP, hosts []string) error {
	srv, err := p.ensureLeaf(ca, fresh, p.ServerCert, p.ServerKey, func() ([]byte, []byte, error) {
		return ca.IssueServer(dnsNames, ips, devLeafValidity)
	})
	if err != nil {
		return err
	}
	missing := uncovered(srv, hosts)
	if len(missing) == 0 {
		return nil
	}
	for _, n := range srv.DNSNames {
		dnsNames = appendName(dnsNames, n)
	}
	for _, ip := range srv.IPAddresses {
		ips = appendIP(ips, ip)
	}
	certPEM, keyPEM, err := ca.IssueServer(dnsNames, ips, devLeafValidity)
	if err != nil {
		return err
	}
	if _, err := writeLeaf(p.ServerCert, p.ServerKey, certPEM, keyPEM); err != nil {
		return err
	}
	p.ServerReissued = missing
	return nil
}

// loadOrCreateCA loads the CA if ca.pem exists, or creates and writes a new
// one (key first, so that ca.pem never exists without its key). fresh
// reports whether the CA was just created.
func (p *DevPKI) loadOrCreateCA() (ca *CA, fresh bool, err error) {
	ok, err := exists(p.CAPath)
	if err != nil {
		return nil, false, err
	}
	if ok {
		ca, err = LoadCA(p.CAPath, p.CAKeyPath)
		return ca, false, err
	}
	if ca, err = NewCA(devCACommonName, devCAValidity); err != nil {
		return nil, false, err
	}
	keyPEM, err := ca.KeyPEM()
	if err != nil {
		return nil, false, err
	}
	if err := WriteFile(p.CAKeyPath, keyPEM, 0o600); err != nil {
		return nil, false, err
	}
	if err := WriteFile(p.CAPath, ca.CertPEM, 0o644); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// ensureLeaf reuses the certificate at certPath and key at keyPath if both
// exist (and the CA is not fresh), and otherwise issues and writes a new pair.
// It returns the leaf certificate.
func (p *DevPKI) ensureLeaf(ca *CA, fresh bool, certPath, keyPath string, issue func() ([]byte, []byte, error)) (*x509.Certificate, error) {
	if !fresh {
		certOK, err := exists(certPath)
		if err != nil {
			return nil, err
		}
		keyOK, err := exists(keyPath)
		if err != nil {
			return nil, err
		}
		switch {
		case certOK && keyOK:
			_, leaf, err := LoadKeyPair(certPath, keyPath)
			if err != nil {
				return nil, err
			}
			if err := leaf.CheckSignatureFrom(ca.Cert); err != nil {
				return nil, fmt.Errorf("pki: %s was not issued by the CA in %s: %w", certPath, p.CAPath, err)
			}
			return leaf, nil
		case certOK:
			return nil, fmt.Errorf("pki: %s exists but key %s is missing; remove the certificate to reissue", certPath, keyPath)
		case keyOK:
			return nil, fmt.Errorf("pki: %s exists but certificate %s is missing; remove the key to reissue", keyPath, certPath)
		}
	}
	certPEM, keyPEM, err := issue()
	if err != nil {
		return nil, err
	}
	return writeLeaf(certPath, keyPath, certPEM, keyPEM)
}

// writeLeaf writes a key (first) and its certificate and returns the
// parsed certificate.
func writeLeaf(certPath, keyPath string, certPEM, keyPEM []byte) (*x509.Certificate, error) {
	if err := WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := WriteFile(certPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	certs, err := parseCerts(certPEM, certPath)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// uncovered returns the hosts that cert is not valid for.
func uncovered(cert *x509.Certificate, hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			out = append(out, h)
		}
	}
	return out
}

func appendIP(ips []net.IP, ip net.IP) []net.IP {
	for _, x := range ips {
		if x.Equal(ip) {
			return ips
		}
	}
	return append(ips, ip)
}

func appendName(names []string, name string) []string {
	for _, x := range names {
		if strings.EqualFold(x, name) {
			return names
		}
	}
	return append(names, name)
}

// checkServerName rejects a server host that is neither an IP address nor
// a DNS name (for example one with a port).
func checkServerName(name string) error {
	if len(name) == 0 || len(name) > 253 || name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("pki: server host %q is not an IP address or DNS name", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return fmt.Errorf("pki: server host %q is not an IP address or DNS name (no port; %q is not allowed)", name, r)
		}
	}
	return nil
}

// exists reports whether path exists; errors other than "not exist" are
// returned.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("pki: %w", err)
	}
}

// checkClientName rejects names that are unsafe as a directory name or
// unsuitable as a DNS SAN.
func checkClientName(name string) error {
	if name == "" {
		return errors.New("pki: client name is empty")
	}
	if len(name) > 253 {
		return fmt.Errorf("pki: client name %.20q... is longer than 253 characters", name)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("pki: client name %q may not start with %q", name, name[0])
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '-' || r == '_'
		if !ok {
			return fmt.Errorf("pki: client name %q contains %q; use letters, digits, '.', '-' or '_'", name, r)
		}
	}
	return nil
}
