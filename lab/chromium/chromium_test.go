//go:build linux

package chromium

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPage: the browser, driven over its pipe, loads a page from a
// loopback server, runs its script, answers an expression and writes a
// PNG of it.
func TestPage(t *testing.T) {
	if _, err := os.Stat(Path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: install the Debian package chromium", Path)
		}
		t.Skipf("%s is missing (Debian package chromium)", Path)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><body><p id="p">waiting</p><script>setTimeout(() => { document.getElementById('p').textContent = 'ready'; }, 100)</script></body>`))
	}))
	defer srv.Close()
	b, err := Start(Options{Profile: t.TempDir(), Width: 640, Height: 480})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Navigate(srv.URL + "/"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitJS("the script's text", `document.getElementById('p').textContent === 'ready'`, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.Eval(`6 * 7`, &n); err != nil || n != 42 {
		t.Errorf("6 * 7 = %d (%v)", n, err)
	}
	if err := b.Eval(`nosuch()`, nil); err == nil {
		t.Error("a script error was not returned")
	}
	path := filepath.Join(t.TempDir(), "page.png")
	if err := b.Screenshot(path); err != nil {
		t.Fatal(err)
	}
	png, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot is not a PNG (%d bytes, %v)", len(png), err)
	}
}
