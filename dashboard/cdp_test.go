package dashboard_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromiumPath is Debian's chromium package.
const chromiumPath = "/usr/bin/chromium"

// browser is a headless Chromium driven over the DevTools protocol on a
// loopback websocket (a minimal RFC 6455 client: text frames, masked from
// the client, continuation frames joined).
type browser struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
	id   int
}

// startBrowser runs Chromium headless with a fresh profile, killing it
// (and every process it started) at the end of the test, and connects to
// its first page.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: install the Debian package chromium", chromiumPath)
		}
		t.Skipf("%s is missing (Debian package chromium): the dashboard is not tested in a browser", chromiumPath)
	}
	profile := t.TempDir()
	cmd := exec.Command(chromiumPath, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+profile,
		"--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "--window-size=1280,1024",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update", "--disable-default-apps",
		"--disable-breakpad", "--disable-domain-reliability", "--no-pings", "--metrics-recording-only",
		// Nothing but loopback is resolved: the browser reaches no one else.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
		"about:blank")
	// Its home and caches are in the profile too: nothing is left behind.
	cmd.Env = append(os.Environ(), "HOME="+profile, "XDG_CONFIG_HOME="+filepath.Join(profile, "config"), "XDG_CACHE_HOME="+filepath.Join(profile, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM lets the browser end and reap its children; then
		// whatever is left of its process group is killed.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	var port string
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		if lines := strings.Split(string(b), "\n"); err == nil && len(lines) >= 2 {
			port = strings.TrimSpace(lines[0])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromium did not open its DevTools port: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&targets)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			return dialBrowser(t, tg.WS)
		}
	}
	t.Fatalf("chromium has no page: %+v", targets)
	return nil
}

func dialBrowser(t *testing.T, ws string) *browser {
	t.Helper()
	u, err := url.Parse(ws)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	k := base64.StdEncoding.EncodeToString(key)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", u.RequestURI(), u.Host, k)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("websocket handshake with chromium: %s", resp.Status)
	}
	return &browser{t: t, conn: conn, br: br}
}

func (b *browser) writeFrame(opcode byte, payload []byte) error {
	hdr := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	mask := make([]byte, 4)
	_, _ = rand.Read(mask)
	hdr = append(hdr, mask...)
	masked := make([]byte, len(payload))
	for i, c := range payload {
		masked[i] = c ^ mask[i%4]
	}
	_, err := b.conn.Write(append(hdr, masked...))
	return err
}

// readMessage returns the next text message, answering pings.
func (b *browser) readMessage() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(b.br, h[:]); err != nil {
			return nil, err
		}
		fin, opcode := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(b.br, e[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(b.br, e[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("websocket frame of %d bytes", n)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(b.br, payload); err != nil {
			return nil, err
		}
		switch opcode {
		case 0x8:
			return nil, errors.New("chromium closed the websocket")
		case 0x9:
			if err := b.writeFrame(0xA, payload); err != nil {
				return nil, err
			}
			continue
		case 0xA:
			continue
		}
		msg = append(msg, payload...)
		if fin {
			return msg, nil
		}
	}
}

// call sends one DevTools command and returns its result (events that
// arrive meanwhile are skipped).
func (b *browser) call(method string, params any) json.RawMessage {
	b.t.Helper()
	b.id++
	req, _ := json.Marshal(map[string]any{"id": b.id, "method": method, "params": params})
	_ = b.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := b.writeFrame(0x1, req); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	for {
		m, err := b.readMessage()
		if err != nil {
			b.t.Fatalf("%s: %v", method, err)
		}
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(m, &resp) != nil || resp.ID != b.id {
			continue
		}
		if resp.Error != nil {
			b.t.Fatalf("%s: %s", method, resp.Error.Message)
		}
		return resp.Result
	}
}

// eval evaluates a JavaScript expression in the page and decodes its
// value into v.
func (b *browser) eval(expr string, v any) {
	b.t.Helper()
	res := b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	var out struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &out); err != nil {
		b.t.Fatal(err)
	}
	if out.Exception != nil {
		b.t.Fatalf("%s: %s", expr, out.Exception.Text)
	}
	if v != nil && len(out.Result.Value) > 0 {
		if err := json.Unmarshal(out.Result.Value, v); err != nil {
			b.t.Fatalf("%s: %v (%s)", expr, err, out.Result.Value)
		}
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
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ok bool
		b.eval("(() => { try { return !!("+cond+"); } catch (e) { return false; } })()", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var page string
			b.eval("location.href + '\\n' + (document.body ? document.body.innerText.slice(0, 2000) : '')", &page)
			b.t.Fatalf("timed out waiting for %s; the page shows:\n%s", what, page)
		}
		time.Sleep(50 * time.Millisecond)
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
	var out struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(b.call("Page.captureScreenshot", map[string]any{"format": "png"}), &out); err != nil {
		b.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(out.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
