package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"time"
)

//go:embed static
var staticFS embed.FS

// pages are the dashboard's pages: one document each, rendered by app.js
// from the /api/ endpoints.
var pages = map[string]string{
	"/":            "Overview",
	"/mitigations": "Mitigations",
	"/mitigation":  "Mitigation",
	"/bgp":         "BGP neighbors",
	"/events":      "Event log",
}

// public are the only files served without authentication: what the login
// form needs.
var public = map[string]bool{"/static/login.js": true, "/static/style.css": true}

func (d *Dashboard) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	m.Handle("GET /static/", files)
	m.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) { serveFile(w, r, "login.html") })
	m.HandleFunc("POST /login", d.auth.login)
	m.HandleFunc("POST /logout", d.auth.logout)
	for p := range pages {
		pattern := "GET " + p
		if p == "/" {
			pattern = "GET /{$}"
		}
		m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { serveFile(w, r, "page.html") })
	}
	m.HandleFunc("GET /api/overview", d.overview)
	m.HandleFunc("GET /api/mitigations", d.mitigations)
	m.HandleFunc("GET /api/mitigation", d.mitigation)
	m.HandleFunc("GET /api/bgp", d.bgp)
	m.HandleFunc("GET /api/events", d.eventLog)
	m.HandleFunc("GET /api/stream", d.stream)
	d.mux = m
}

// ServeHTTP answers operators only: the login form and its files are the
// only things served to anyone else.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header(), r.TLS != nil)
	p := path.Clean(r.URL.Path)
	if p == "/login" || public[p] || d.auth.ok(r) {
		d.mux.ServeHTTP(w, r)
		return
	}
	if len(p) >= 5 && p[:5] == "/api/" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="levee dashboard"`)
		apiError(w, http.StatusUnauthorized, "authentication required: a bearer token or a client certificate")
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func serveFile(w http.ResponseWriter, r *http.Request, name string) {
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// keepAlive is how often an idle live stream gets a comment line, so that
// proxies and the browser keep it open.
const keepAlive = 15 * time.Second

// streamWriteTimeout bounds each write of a live stream (the server's
// WriteTimeout would end the stream).
const streamWriteTimeout = 10 * time.Second

// stream serves the live updates as server-sent events: "mitigations"
// (changed mitigations), "log" (event log entries) and "samples" (new
// counter readings), at most MaxStreams at a time.
func (d *Dashboard) stream(w http.ResponseWriter, r *http.Request) {
	ch, ok := d.subscribe()
	if !ok {
		apiError(w, http.StatusServiceUnavailable, "too many live streams open; reload later")
		return
	}
	defer d.unsubscribe(ch)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: 2000\n: live\n\n")) {
		return
	}
	t := time.NewTicker(keepAlive)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case msg, open := <-ch:
			if !open || !write(msg) {
				return
			}
		case <-t.C:
			if !write([]byte(": keep-alive\n\n")) {
				return
			}
		}
	}
}
