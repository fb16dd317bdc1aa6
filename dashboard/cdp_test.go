//go:build linux

package dashboard_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/levee-dots/levee/lab/chromium"
)

// browser is a headless Chromium (lab/chromium) whose failures fail the
// test.
type browser struct {
	t *testing.T
	b *chromium.Browser
}

// startBrowser runs Chromium headless with a fresh profile, ending it
// (and every process it started) at the end of the test, on a blank page.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromium.Path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: install the Debian package chromium", chromium.Path)
		}
		t.Skipf("%s is missing (Debian package chromium): the dashboard is not tested in a browser", chromium.Path)
	}
	b, err := chromium.Start(chromium.Options{Profile: t.TempDir(), Width: 1280, Height: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return &browser{t: t, b: b}
}

// call sends one DevTools command and returns its result.
func (b *browser) call(method string, params any) json.RawMessage {
	b.t.Helper()
	res, err := b.b.Call(method, params)
	if err != nil {
		b.t.Fatal(err)
	}
	return res
}

// eval evaluates a JavaScript expression in the page and decodes its
// value into v.
func (b *browser) eval(expr string, v any) {
	b.t.Helper()
	if err := b.b.Eval(expr, v); err != nil {
		b.t.Fatal(err)
	}
}

// navigate loads url and waits until the page's script has rendered it
// (body[data-ready]) and its live stream is open.
func (b *browser) navigate(url string) {
	b.t.Helper()
	b.call("Page.navigate", map[string]any{"url": url})
	b.waitJS("page "+url+" rendered and live", `document.body && document.body.dataset.ready === 'true' && document.querySelector('#live.on') !== null`)
}

// waitJS waits until a JavaScript condition holds in the page.
func (b *browser) waitJS(what, cond string) {
	b.t.Helper()
	if err := b.b.WaitJS(what, cond, 20*time.Second); err != nil {
		b.t.Fatal(err)
	}
}

// text returns the text content of the first element matching selector
// ("" when none does).
func (b *browser) text(selector string) string {
	b.t.Helper()
	var s string
	sel, _ := json.Marshal(selector)
	b.eval(fmt.Sprintf(`(document.querySelector(%s) || {textContent: ''}).textContent`, sel), &s)
	return s
}

// screenshot writes a PNG of the page as it is.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := b.b.Screenshot(path); err != nil {
		b.t.Fatal(err)
	}
}
