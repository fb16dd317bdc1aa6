package pki

import (
	"crypto/x509"
	"fmt"
	"time"
)

// ExpiryWarning is how long before its end a certificate is reported as
// about to expire.
const ExpiryWarning = 30 * 24 * time.Hour

// Expiry says whether c is outside its validity period at now, or ends
// within ExpiryWarning of it; "" when neither. what names the certificate
// for the operator ("tls.certificate server.pem").
func Expiry(what string, c *x509.Certificate, now time.Time) string {
	switch {
	case now.After(c.NotAfter):
		return fmt.Sprintf("%s (%s) expired on %s", what, c.Subject, c.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(c.NotBefore):
		return fmt.Sprintf("%s (%s) is not valid before %s", what, c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
	case c.NotAfter.Sub(now) < ExpiryWarning:
		return fmt.Sprintf("%s (%s) expires in %d days, on %s", what, c.Subject,
			int(c.NotAfter.Sub(now).Hours()/24), c.NotAfter.UTC().Format(time.DateOnly))
	}
	return ""
}
