package tlsprofile

import (
	"crypto/tls"
	"testing"

	piondtls "github.com/pion/dtls/v3"
)

// TestAEADOnly: every suite is one the libraries call secure and AEAD
// (crypto/tls lists no CBC or RC4 suite among CipherSuites()).
func TestAEADOnly(t *testing.T) {
	secure := map[uint16]bool{}
	for _, s := range tls.CipherSuites() {
		secure[s.ID] = true
	}
	for _, id := range TLSCipherSuites() {
		if !secure[id] {
			t.Errorf("TLS suite %s is not among crypto/tls's secure suites", tls.CipherSuiteName(id))
		}
	}
	for _, id := range DTLSCipherSuites() {
		if !secure[uint16(id)] {
			t.Errorf("DTLS suite %s is not among crypto/tls's secure suites", piondtls.CipherSuiteID(id))
		}
	}
	if len(DTLSCipherSuites()) != len(TLSCipherSuites()) {
		t.Error("the DTLS and TLS profiles offer different suites")
	}
}
