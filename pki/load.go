package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadCerts reads the certificates of one PEM file (one or more); a file
// with no certificate is an error naming the file.
func LoadCerts(what, path string) ([]*x509.Certificate, error) {
	data, err := readFile(what, path)
	if err != nil {
		return nil, err
	}
	return parseCerts(data, path)
}

// LoadCertPool reads one or more PEM files (each may hold several
// certificates) into a pool; an empty list or a file with no certificate is
// an error naming the file.
func LoadCertPool(paths ...string) (*x509.CertPool, error) {
	if len(paths) == 0 {
		return nil, errors.New("pki: no CA certificate files given")
	}
	pool := x509.NewCertPool()
	for _, path := range paths {
		certs, err := LoadCerts("CA certificate", path)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool, nil
}

// LoadKeyPair loads a tls.Certificate and also returns the parsed leaf;
// errors name the file and say what is wrong (missing file, no PEM, key does
// not match certificate).
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, *x509.Certificate, error) {
	var none tls.Certificate
	certData, err := readFile("certificate", certPath)
	if err != nil {
		return none, nil, err
	}
	keyData, err := readFile("key", keyPath)
	if err != nil {
		return none, nil, err
	}
	certs, err := parseCerts(certData, certPath)
	if err != nil {
		return none, nil, err
	}
	key, err := parsePrivateKey(keyData, keyPath)
	if err != nil {
		return none, nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		return none, nil, fmt.Errorf("pki: private key %s does not match certificate %s", keyPath, certPath)
	}
	pair, err := tls.X509KeyPair(certData, keyData)
	if err != nil {
		return none, nil, fmt.Errorf("pki: key pair %s, %s: %w", certPath, keyPath, err)
	}
	if pair.Leaf == nil {
		pair.Leaf = certs[0]
	}
	return pair, pair.Leaf, nil
}

// WriteFile writes data atomically (temp file in same dir + rename) with the
// given mode, creating parent dirs 0700.
func WriteFile(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err != nil {
			if !closed {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode.Perm()); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("pki: sync %s: %w", path, err)
	}
	closed = true
	if err = f.Close(); err != nil {
		return fmt.Errorf("pki: close %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	// Best effort: persist the rename itself.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// readFile reads path, describing failures as "pki: <what> file <path>: ...".
// The underlying error stays wrapped, so errors.Is(err, fs.ErrNotExist) works.
func readFile(what, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("pki: %s file %s: %w", what, path, err)
	}
	return data, nil
}

// parseCerts parses every CERTIFICATE block in data, which was read from path.
func parseCerts(data []byte, path string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	sawPEM := false
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		sawPEM = true
		if block.Type != pemCertificate {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: %s: certificate %d: %w", path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	switch {
	case !sawPEM:
		return nil, fmt.Errorf("pki: %s: no PEM data found", path)
	case len(certs) == 0:
		return nil, fmt.Errorf("pki: %s: no CERTIFICATE PEM block found", path)
	}
	return certs, nil
}

// parsePrivateKey parses the first private key block in data, which was read
// from path. PKCS #8, SEC 1 and PKCS #1 encodings are accepted.
func parsePrivateKey(data []byte, path string) (crypto.Signer, error) {
	sawPEM := false
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		sawPEM = true
		var key any
		var err error
		switch block.Type {
		case pemPrivateKey:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case pemECPrivateKey:
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("pki: %s: encrypted private keys are not supported", path)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pki: %s: %s: %w", path, block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("pki: %s: unsupported private key type %T", path, key)
		}
		return signer, nil
	}
	if !sawPEM {
		return nil, fmt.Errorf("pki: %s: no PEM data found", path)
	}
	return nil, fmt.Errorf("pki: %s: no PRIVATE KEY PEM block found", path)
}
