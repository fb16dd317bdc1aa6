package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// cookieName is the session cookie set by the login form.
const cookieName = "levee_dashboard"

// auth decides whether a request comes from an operator: a verified client
// certificate, the bearer token, or the cookie the login form set.
type auth struct {
	token  []byte // nil: no token login
	cookie []byte // derived from the token: the token itself never goes into a cookie
}

func newAuth(token []byte) *auth {
	a := &auth{}
	if len(token) > 0 {
		a.token = token
		m := hmac.New(sha256.New, token)
		m.Write([]byte("levee dashboard session"))
		a.cookie = []byte(hex.EncodeToString(m.Sum(nil)))
	}
	return a
}

// ok reports whether r is authenticated. Comparisons take constant time.
func (a *auth) ok(r *http.Request) bool {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return true
	}
	if a.token == nil {
		return false
	}
	if h, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found {
		return a.tokenOK(h)
	}
	if c, err := r.Cookie(cookieName); err == nil {
		return subtle.ConstantTimeCompare([]byte(c.Value), a.cookie) == 1
	}
	return false
}

func (a *auth) tokenOK(t string) bool {
	return a.token != nil && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(t)), a.token) == 1
}

// login takes the login form: the right token sets the session cookie
// and goes to the overview, a wrong one back to the form.
func (a *auth) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if !a.tokenOK(r.PostFormValue("token")) {
		http.Redirect(w, r, "/login?failed=1", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: string(a.cookie), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *auth) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// securityHeaders are on every answer: nothing from elsewhere, no inline
// script, no framing, no sniffing, no referrer; over TLS, HTTPS only.
func securityHeaders(h http.Header, tls bool) {
	if tls {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}
