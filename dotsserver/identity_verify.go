package dotsserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	tcpClient "github.com/plgd-dev/go-coap/v3/tcp/client"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// verifyClientCert is the handshake's last check of a client certificate
// that chains to a configured CA: it must not be revoked (CRL) and must map
// to a client domain. Refusing here, rather than answering 4.01 to
// every request of a session, keeps such a peer from holding sessions.
func (s *Server) verifyClientCert(c *x509.Certificate, transport string) error {
	set := s.clients()
	if err := set.crl.check(c); err != nil {
		s.rlog.warn("revoked:"+serialHex(c), "revoked client certificate: handshake refused",
			"serial", serialHex(c), "subject", c.Subject.String(), "transport", transport)
		return err
	}
	if _, err := identifyCert(set.domains, c, transport); err != nil {
		var ue *unmappedError
		if errors.As(err, &ue) {
			s.rlog.warn("unmapped:"+ue.cuid, "client certificate maps to no client domain: handshake refused",
				"subject", ue.subject, "cuid", ue.cuid, "serial", serialHex(c), "transport", transport)
		}
		return err
	}
	s.clientCertSeen(c, transport)
	return nil
}

// verifyDTLSPeer is pion's VerifyPeerCertificate: it runs after the
// client proved it holds the certificate's key, on every full handshake
// (the server keeps no sessions to resume). It verifies the chain against
// the client CAs in force (reload.go), then as verifyClientCert.
func (s *Server) verifyDTLSPeer(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return errors.New("client sent no certificate")
	}
	c, err := s.verifyDTLSChain(raw)
	if err != nil {
		return err
	}
	return s.verifyClientCert(c, "dtls")
}

// verifyTLSConn is crypto/tls's VerifyConnection: it runs on full and on
// resumed handshakes alike.
func (s *Server) verifyTLSConn(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("client sent no certificate")
	}
	return s.verifyClientCert(cs.PeerCertificates[0], "tls")
}

// serialHex is a certificate's serial number as CRLs and openssl print it.
func serialHex(c *x509.Certificate) string {
	return strings.ToUpper(c.SerialNumber.Text(16))
}

// unmappedSession returns the 4.01 diagnostic of a session whose
// certificate maps to no client domain. The handshake refuses such
// certificates; a session that got through anyway (its domain was removed
// meanwhile) is answered once and closed.
func (s *Server) unmappedSession(conn mux.Conn, req *pool.Message) (string, bool) {
	if !isRequest(req.Code()) {
		return "", false
	}
	_, err := s.live.peer(conn)
	var ue *unmappedError
	if !errors.As(err, &ue) {
		return "", false
	}
	s.rlog.warn("unmapped:"+ue.cuid, "client certificate maps to no client domain: 4.01 and the session is closed",
		"subject", ue.subject, "cuid", ue.cuid, "remote", conn.RemoteAddr().String())
	return ue.Error() + ": this session is closed", true
}

// udpUnauthorized answers a DTLS request 4.01 with diag and closes the
// session.
func (s *Server) udpUnauthorized(cc *udpClient.Conn, req *pool.Message, diag string) {
	cc.ProcessReceivedMessageWithHandler(req, udpReply(codes.Unauthorized, diag, 0, 0))
	_ = cc.Close()
}

// errUnmapped ends a TLS session after its 4.01 (go-coap closes a session
// whose request monitor fails).
var errUnmapped = errors.New("client certificate maps to no client domain")

// tcpUnauthorized answers a TLS request 4.01 with diag; the error it
// returns makes go-coap close the session.
func tcpUnauthorized(cc *tcpClient.Conn, req *pool.Message, diag string) error {
	if err := tcpReply(cc, req, codes.Unauthorized, diag, 0, 0); err != nil {
		return err
	}
	return errUnmapped
}
