package dotsserver

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/plgd-dev/go-coap/v3/mux"
)

// CRL configures the revocation check of client certificates (tls.crl).
// A certificate listed as revoked by its issuer is refused in the DTLS and
// TLS handshake; when the lists change, the sessions of certificates they
// now revoke are closed.
type CRL struct {
	// Files are certificate revocation lists, each PEM (one or more
	// "X509 CRL" blocks) or DER.
	Files []string
	// Issuers are the CA certificates that sign the lists, usually the
	// client CAs: a list whose signature none of them verifies is refused.
	Issuers []*x509.Certificate
	// CheckInterval is how often the files' modification times and sizes
	// are compared with those last read; a change reloads them all.
	// Default DefaultCRLCheckInterval.
	CheckInterval time.Duration
}

// DefaultCRLCheckInterval is how often CRL files are checked for changes.
const DefaultCRLCheckInterval = 5 * time.Second

// fileStamp tells a file's version apart from the one read before.
type fileStamp struct {
	mod  time.Time
	size int64
}

// revocations are the revoked serial numbers by issuer, from CRL.Files.
// A nil *revocations revokes nothing.
type revocations struct {
	cfg CRL
	log *slog.Logger
	now func() time.Time

	reload sync.Mutex // one reload at a time
	mu     sync.RWMutex
	byName map[string]map[string]string // issuer RawSubject → serial bytes → the file that lists it
	stamps []fileStamp
}

// newRevocations reads the lists, or returns nil when there are none.
func newRevocations(cfg CRL, log *slog.Logger, now func() time.Time) (*revocations, error) {
	if len(cfg.Files) == 0 {
		return nil, nil
	}
	if len(cfg.Issuers) == 0 {
		return nil, errors.New("crl: no issuer certificates to verify the lists with (CRL.Issuers)")
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCRLCheckInterval
	}
	r := &revocations{cfg: cfg, log: log, now: now}
	stamps, err := r.stat()
	if err != nil {
		return nil, err
	}
	byName, err := r.read()
	if err != nil {
		return nil, err
	}
	r.byName, r.stamps = byName, stamps
	return r, nil
}

func (r *revocations) stat() ([]fileStamp, error) {
	out := make([]fileStamp, len(r.cfg.Files))
	for i, f := range r.cfg.Files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, fmt.Errorf("crl: %w", err)
		}
		out[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return out, nil
}

// read parses every file and verifies every list against the issuers.
func (r *revocations) read() (map[string]map[string]string, error) {
	byName := map[string]map[string]string{}
	for _, f := range r.cfg.Files {
		lists, err := readCRLFile(f)
		if err != nil {
			return nil, err
		}
		for i, l := range lists {
			iss := r.issuerOf(l)
			if iss == nil {
				return nil, fmt.Errorf("crl: %s: list %d: not signed by any client CA (issuer %q)", f, i+1, issuerName(l))
			}
			if !l.NextUpdate.IsZero() && r.now().After(l.NextUpdate) {
				// Still applied: refusing every client of a stale list would
				// take the signal channel down.
				r.log.Warn("certificate revocation list is past its next update: publish a fresh one", "file", f,
					"issuer", iss.Subject.String(), "next-update", l.NextUpdate)
			}
			set := byName[string(iss.RawSubject)]
			if set == nil {
				set = map[string]string{}
				byName[string(iss.RawSubject)] = set
			}
			for _, e := range l.RevokedCertificateEntries {
				set[string(e.SerialNumber.Bytes())] = f
			}
		}
	}
	return byName, nil
}

func issuerName(l *x509.RevocationList) string {
	if l.Issuer.String() != "" {
		return l.Issuer.String()
	}
	return fmt.Sprintf("%x", l.RawIssuer)
}

// issuerOf returns the issuer certificate whose key verifies l.
func (r *revocations) issuerOf(l *x509.RevocationList) *x509.Certificate {
	for _, c := range r.cfg.Issuers {
		if bytes.Equal(c.RawSubject, l.RawIssuer) && l.CheckSignatureFrom(c) == nil {
			return c
		}
	}
	return nil
}

// readCRLFile parses a file of PEM "X509 CRL" blocks, or one DER list.
func readCRLFile(path string) ([]*x509.RevocationList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("crl: %w", err)
	}
	var lists []*x509.RevocationList
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "X509 CRL" {
			continue
		}
		l, err := x509.ParseRevocationList(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("crl: %s: list %d: %w", path, len(lists)+1, err)
		}
		lists = append(lists, l)
	}
	if len(lists) > 0 {
		return lists, nil
	}
	l, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("crl: %s: neither PEM \"X509 CRL\" blocks nor a DER list: %w", path, err)
	}
	return []*x509.RevocationList{l}, nil
}

// revokedError refuses a revoked certificate.
type revokedError struct {
	serial, subject, file string
}

func (e *revokedError) Error() string {
	return fmt.Sprintf("certificate %q (serial %s) is revoked (%s)", e.subject, e.serial, e.file)
}

// check refuses c if its issuer's list revokes it.
func (r *revocations) check(c *x509.Certificate) error {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	f, revoked := r.byName[string(c.RawIssuer)][string(c.SerialNumber.Bytes())]
	r.mu.RUnlock()
	if !revoked {
		return nil
	}
	return &revokedError{serial: serialHex(c), subject: c.Subject.String(), file: f}
}

// refresh re-reads the lists if a file changed since they were read; a
// list that does not load leaves the previous ones in force.
func (r *revocations) refresh() (bool, error) {
	r.reload.Lock()
	defer r.reload.Unlock()
	stamps, err := r.stat()
	if err != nil {
		return false, err
	}
	r.mu.RLock()
	same := slices.EqualFunc(stamps, r.stamps, func(a, b fileStamp) bool { return a.mod.Equal(b.mod) && a.size == b.size })
	r.mu.RUnlock()
	if same {
		return false, nil
	}
	byName, err := r.read()
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	r.byName, r.stamps = byName, stamps
	r.mu.Unlock()
	return true, nil
}

// ReloadCRL re-reads the CRL files if one changed (modification time or
// size) and closes the sessions of certificates they now revoke. It reports
// whether the lists were re-read. The server calls it every
// CRL.CheckInterval; a list that does not load leaves the previous ones in
// force and is reported here.
func (s *Server) ReloadCRL() (bool, error) {
	crl := s.clients().crl
	if crl == nil {
		return false, nil
	}
	changed, err := crl.refresh()
	if err != nil || !changed {
		return false, err
	}
	n := s.closeRevoked(crl)
	s.log.Info("certificate revocation lists reloaded", "files", len(crl.cfg.Files), "sessions-closed", n)
	return true, nil
}

// closeRevoked closes every session whose certificate crl revokes now.
func (s *Server) closeRevoked(crl *revocations) int {
	type sess struct {
		conn mux.Conn
		p    *peer
	}
	s.live.mu.Lock()
	all := make([]sess, 0, len(s.live.conns))
	for conn, cs := range s.live.conns {
		all = append(all, sess{conn, cs.peer})
	}
	s.live.mu.Unlock()
	n := 0
	for _, se := range all {
		var cert *x509.Certificate
		if se.p != nil {
			cert = se.p.cert
		} else if leaf, _, err := peerLeaf(se.conn.NetConn()); err == nil {
			cert, _ = x509.ParseCertificate(leaf)
		}
		if cert == nil {
			continue
		}
		if err := crl.check(cert); err != nil {
			s.log.Warn("session of a revoked client certificate closed", "serial", serialHex(cert),
				"subject", cert.Subject.String(), "remote", se.conn.RemoteAddr().String())
			_ = se.conn.Close()
			n++
		}
	}
	return n
}

// watchCRL reloads the lists when their files change, until Close. It
// runs without lists too: a reload (Reload) may bring some.
func (s *Server) watchCRL() {
	every := s.opts.CRL.CheckInterval
	if every <= 0 {
		every = DefaultCRLCheckInterval
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			if _, err := s.ReloadCRL(); err != nil {
				s.rlog.warn("crl-reload", "certificate revocation lists not reloaded: the previous ones stay in force", "err", err)
			}
		}
	}()
}
