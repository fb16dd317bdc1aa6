// Package pki issues and loads the X.509 material of a DOTS deployment: a
// development CA, server and client certificates with ECDSA P-256 keys
// (RFC 9132 §8 mutual authentication), and the cuid each client certificate
// implies (RFC 9132 §4.4.1).
//
// Private keys are always written as PKCS #8 ("PRIVATE KEY" PEM blocks);
// loading also accepts SEC 1 ("EC PRIVATE KEY") keys.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/levee-dots/levee/dots"
)

// PEM block types.
const (
	pemCertificate  = "CERTIFICATE"
	pemPrivateKey   = "PRIVATE KEY"
	pemECPrivateKey = "EC PRIVATE KEY"
)

// CA is a certificate authority able to issue server and client certificates.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA creates a self-signed CA certificate with a fresh P-256 key, valid
// from one hour ago until validFor from now.
func NewCA(commonName string, validFor time.Duration) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("pki: CA common name is empty")
	}
	if validFor <= 0 {
		return nil, fmt.Errorf("pki: CA validity %v is not positive", validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	skid, err := subjectKeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validFor),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
		SubjectKeyId:          skid,
		AuthorityKeyId:        skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodePEM(pemCertificate, der)}, nil
}

// LoadCA loads a CA from a PEM certificate file (its first certificate is
// used) and a PEM private key file. The key must be ECDSA, match the
// certificate, and the certificate must be a CA certificate.
func LoadCA(certPEMPath, keyPEMPath string) (*CA, error) {
	certData, err := readFile("CA certificate", certPEMPath)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(certData, certPEMPath)
	if err != nil {
		return nil, err
	}
	cert := certs[0]
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: %s: certificate %q is not a CA certificate", certPEMPath, cert.Subject.CommonName)
	}
	keyData, err := readFile("CA key", keyPEMPath)
	if err != nil {
		return nil, err
	}
	signer, err := parsePrivateKey(keyData, keyPEMPath)
	if err != nil {
		return nil, err
	}
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: %s: CA key is %T, want an ECDSA key", keyPEMPath, signer)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("pki: CA key %s does not match certificate %s", keyPEMPath, certPEMPath)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodePEM(pemCertificate, cert.Raw)}, nil
}

// KeyPEM returns the CA private key as a PKCS #8 "PRIVATE KEY" PEM block.
func (ca *CA) KeyPEM() ([]byte, error) {
	if ca == nil || ca.Key == nil {
		return nil, errors.New("pki: CA has no private key")
	}
	return marshalKey(ca.Key)
}

// IssueServer issues a TLS server certificate (ExtKeyUsageServerAuth) for the
// given DNS names and IPs; CN = first DNS name or "dotsd".
func (ca *CA) IssueServer(dnsNames []string, ips []net.IP, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, nil, errors.New("pki: server certificate needs at least one DNS name or IP address")
	}
	cn := "dotsd"
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    append([]string(nil), dnsNames...),
		IPAddresses: append([]net.IP(nil), ips...),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, validFor)
}

// IssueClient issues a client certificate (ExtKeyUsageClientAuth) with
// Subject CN = name and a DNS SAN = name.
func (ca *CA) IssueClient(name string, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if name == "" {
		return nil, nil, errors.New("pki: client name is empty")
	}
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		DNSNames:    []string{name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, validFor)
}

// issue completes tmpl with a fresh P-256 key, serial, validity and key
// identifiers and signs it with the CA. The validity is clamped to the CA's.
func (ca *CA) issue(tmpl *x509.Certificate, validFor time.Duration) (certPEM, keyPEM []byte, err error) {
	if ca == nil || ca.Cert == nil || ca.Key == nil {
		return nil, nil, errors.New("pki: CA has no certificate or private key")
	}
	if validFor <= 0 {
		return nil, nil, fmt.Errorf("pki: certificate validity %v is not positive", validFor)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate key: %w", err)
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, nil, err
	}
	if tmpl.SubjectKeyId, err = subjectKeyID(&key.PublicKey); err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(validFor)
	if tmpl.NotBefore.Before(ca.Cert.NotBefore) {
		tmpl.NotBefore = ca.Cert.NotBefore
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
	tmpl.AuthorityKeyId = ca.Cert.SubjectKeyId
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodePEM(pemCertificate, der), keyPEM, nil
}

// CUID returns the RFC 9132 §4.4.1 client identifier for a certificate:
// base64url without padding of the first 16 bytes of SHA-256 over the DER
// SubjectPublicKeyInfo (22 characters). It returns "" for a nil certificate.
func CUID(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	return CUIDFromSPKI(cert.RawSubjectPublicKeyInfo)
}

// CUIDFromSPKI returns the cuid for a DER-encoded SubjectPublicKeyInfo.
func CUIDFromSPKI(spkiDER []byte) string { return dots.CUIDFromSPKI(spkiDER) }

// randomSerial returns a random, positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("pki: generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// subjectKeyID computes a key identifier per RFC 7093 §2 method 1: the
// leftmost 160 bits of the SHA-256 hash of the subjectPublicKey bit string
// (for ECDSA, the uncompressed point).
func subjectKeyID(pub *ecdsa.PublicKey) ([]byte, error) {
	ek, err := pub.ECDH()
	if err != nil {
		return nil, fmt.Errorf("pki: subject key identifier: %w", err)
	}
	sum := sha256.Sum256(ek.Bytes())
	return sum[:20], nil
}

// marshalKey encodes key as a PKCS #8 "PRIVATE KEY" PEM block.
func marshalKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal private key: %w", err)
	}
	return encodePEM(pemPrivateKey, der), nil
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
