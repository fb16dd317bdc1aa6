//go:build linux

// Package chromium drives Debian's headless Chromium over the DevTools
// protocol on a pipe (--remote-debugging-pipe: the browser reads commands
// on its fd 3 and writes answers and events on its fd 4, one JSON message
// each, ended by a NUL byte). Over a pipe the browser opens no debugging
// port, so it can run in another network namespace (ip netns exec) and
// still be driven from here.
package chromium

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Path is Debian's chromium package.
const Path = "/usr/bin/chromium"

// Options configure Start.
type Options struct {
	// Netns, if set, is the network namespace the browser runs in
	// (through ip netns exec).
	Netns string
	// Width and Height are the window's size (default 1280×1024).
	Width, Height int
	// Profile is the browser's profile, home and caches: an empty
	// directory, which the caller removes afterwards.
	Profile string
}

// Browser is a headless Chromium with one page attached.
type Browser struct {
	cmd     *exec.Cmd
	w       *os.File // the browser's fd 3
	msgs    chan []byte
	exited  chan struct{}
	id      int
	session string // the page's
}

// Start runs Chromium headless on a blank page and attaches to it. Only
// loopback names resolve in it: the browser reaches no one else.
func Start(o Options) (*Browser, error) {
	if _, err := os.Stat(Path); err != nil {
		return nil, fmt.Errorf("chromium: %s is missing (Debian package chromium): %w", Path, err)
	}
	if o.Profile == "" {
		return nil, errors.New("chromium: a profile directory is required")
	}
	if o.Width <= 0 || o.Height <= 0 {
		o.Width, o.Height = 1280, 1024
	}
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + o.Profile,
		"--remote-debugging-pipe", fmt.Sprintf("--window-size=%d,%d", o.Width, o.Height),
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update", "--disable-default-apps",
		"--disable-breakpad", "--disable-domain-reliability", "--no-pings", "--metrics-recording-only",
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
		"about:blank"}
	bin := Path
	if o.Netns != "" {
		args = append([]string{"netns", "exec", o.Netns, Path}, args...)
		bin = "ip"
	}
	cmdR, w, err := os.Pipe() // commands: we write w, the browser reads cmdR as fd 3
	if err != nil {
		return nil, fmt.Errorf("chromium: %w", err)
	}
	r, outW, err := os.Pipe() // answers: the browser writes outW as fd 4
	if err != nil {
		cmdR.Close()
		w.Close()
		return nil, fmt.Errorf("chromium: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	cmd.Env = append(os.Environ(), "HOME="+o.Profile, "XDG_CONFIG_HOME="+filepath.Join(o.Profile, "config"),
		"XDG_CACHE_HOME="+filepath.Join(o.Profile, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	cmdR.Close()
	outW.Close()
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("chromium: %w", err)
	}
	b := &Browser{cmd: cmd, w: w, msgs: make(chan []byte, 64), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(b.exited) }()
	go b.read(r)
	if err := b.attach(); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	return b, nil
}

// read passes the browser's messages to msgs until the pipe ends.
func (b *Browser) read(r *os.File) {
	defer r.Close()
	defer close(b.msgs)
	br := bufio.NewReader(r)
	for {
		m, err := br.ReadBytes(0)
		if err != nil {
			return
		}
		select {
		case b.msgs <- m[:len(m)-1]:
		case <-b.exited:
			return
		}
	}
}

// attach finds the blank page and attaches to it.
func (b *Browser) attach() error {
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		res, err := b.call("", "Target.getTargets", map[string]any{})
		if err != nil {
			return err
		}
		var ts struct {
			Infos []struct {
				ID   string `json:"targetId"`
				Type string `json:"type"`
			} `json:"targetInfos"`
		}
		if err := json.Unmarshal(res, &ts); err != nil {
			return fmt.Errorf("chromium: targets: %w", err)
		}
		for _, t := range ts.Infos {
			if t.Type != "page" {
				continue
			}
			res, err := b.call("", "Target.attachToTarget", map[string]any{"targetId": t.ID, "flatten": true})
			if err != nil {
				return err
			}
			var a struct {
				Session string `json:"sessionId"`
			}
			if err := json.Unmarshal(res, &a); err != nil || a.Session == "" {
				return fmt.Errorf("chromium: attach: %s (%v)", res, err)
			}
			b.session = a.Session
			return nil
		}
		if time.Now().After(end) {
			return errors.New("chromium: no page after 30s")
		}
	}
}

// Call sends one DevTools command to the page and returns its result
// (events that arrive meanwhile are skipped).
func (b *Browser) Call(method string, params any) (json.RawMessage, error) {
	return b.call(b.session, method, params)
}

func (b *Browser) call(session, method string, params any) (json.RawMessage, error) {
	b.id++
	req := map[string]any{"id": b.id, "method": method, "params": params}
	if session != "" {
		req["sessionId"] = session
	}
	m, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := b.w.Write(append(m, 0)); err != nil {
		return nil, fmt.Errorf("chromium: %s: %w", method, err)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, open := <-b.msgs:
			if !open {
				return nil, fmt.Errorf("chromium: %s: the browser closed its pipe", method)
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
				return nil, fmt.Errorf("chromium: %s: %s", method, resp.Error.Message)
			}
			return resp.Result, nil
		case <-timeout:
			return nil, fmt.Errorf("chromium: %s: no answer within 30s", method)
		}
	}
}

// Eval evaluates a JavaScript expression in the page (awaiting a promise)
// and decodes its value into v (nil: discarded).
func (b *Browser) Eval(expr string, v any) error {
	res, err := b.Call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true})
	if err != nil {
		return err
	}
	var out struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return fmt.Errorf("chromium: evaluate: %w", err)
	}
	if out.Exception != nil {
		return fmt.Errorf("chromium: %s: %s", expr, out.Exception.Text)
	}
	if v != nil && len(out.Result.Value) > 0 {
		if err := json.Unmarshal(out.Result.Value, v); err != nil {
			return fmt.Errorf("chromium: %s: %w (%s)", expr, err, out.Result.Value)
		}
	}
	return nil
}

// Navigate loads url in the page.
func (b *Browser) Navigate(url string) error {
	_, err := b.Call("Page.navigate", map[string]any{"url": url})
	return err
}

// WaitJS waits up to timeout until a JavaScript condition holds in the
// page; what names the wait in the error, which carries what the page
// shows.
func (b *Browser) WaitJS(what, cond string, timeout time.Duration) error {
	for end := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		var ok bool
		if err := b.Eval("(() => { try { return !!("+cond+"); } catch (e) { return false; } })()", &ok); err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(end) {
			var page string
			_ = b.Eval("location.href + '\\n' + (document.body ? document.body.innerText.slice(0, 2000) : '')", &page)
			return fmt.Errorf("chromium: timed out waiting for %s; the page shows:\n%s", what, page)
		}
	}
}

// Screenshot writes a PNG of the page as it is.
func (b *Browser) Screenshot(path string) error {
	res, err := b.Call("Page.captureScreenshot", map[string]any{"format": "png"})
	if err != nil {
		return err
	}
	var out struct {
		Data string `json:"data"`
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return fmt.Errorf("chromium: screenshot: %w", err)
	}
	png, err := base64.StdEncoding.DecodeString(out.Data)
	if err != nil {
		return fmt.Errorf("chromium: screenshot: %w", err)
	}
	return os.WriteFile(path, png, 0o644)
}

// Close ends the browser: SIGTERM lets it end and reap its children, then
// whatever is left of its process group is killed.
func (b *Browser) Close() error {
	b.w.Close()
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.exited
	return nil
}
