package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/levee-dots/levee/pki"
)

// withDataListen gives a `dotsd dev` command line a free data-channel port
// unless it names one, so that test servers do not share 8443.
func withDataListen(t testing.TB, args []string) []string {
	if len(args) == 0 || args[0] != "dev" || slices.Contains(args, "--data-listen") {
		return args
	}
	return append(slices.Clone(args), "--data-listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))))
}

// curlData runs curl against a dev server's data channel as a development
// client and returns the HTTP status and body.
func curlData(t *testing.T, dir, client, method, url, body string) (int, string) {
	t.Helper()
	c := filepath.Join(dir, "clients", client)
	out := filepath.Join(t.TempDir(), "out")
	args := []string{"-sS", "--max-time", "10", "--cacert", filepath.Join(dir, "ca.pem"), "--cert", filepath.Join(c, "cert.pem"),
		"--key", filepath.Join(c, "key.pem"), "-X", method, "-o", out, "-w", "%{http_code}"}
	if body != "" {
		args = append(args, "-H", "Content-Type: application/yang-data+json", "--data-binary", body)
	}
	code, err := exec.Command("curl", append(args, url)...).Output()
	if err != nil {
		t.Fatalf("curl %s %s: %v", method, url, err)
	}
	n, _ := strconv.Atoi(string(code))
	b, _ := os.ReadFile(out)
	return n, string(b)
}

// TestDataChannelKill9: `dotsd dev --data-listen` serves the data channel,
// writes its URL into each client's dotsctl.yaml, and what a client stored
// over it survives SIGKILL.
func TestDataChannelKill9(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	bin := buildDotsd(t)
	dir := t.TempDir()
	signal := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	dataAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	args := []string{"dev", "--dir", dir, "--signal-listen", signal, "--data-listen", dataAddr}
	first := startDotsd(t, bin, args...)

	var ctl struct {
		DataChannel string `yaml:"data-channel"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(dir, "clients", "alpha", "dotsctl.yaml")), &ctl); err != nil {
		t.Fatal(err)
	}
	if ctl.DataChannel != "https://"+dataAddr {
		t.Fatalf("dotsctl.yaml data-channel %q, want https://%s", ctl.DataChannel, dataAddr)
	}
	if out := first.stdout.String(); !strings.Contains(out, "data channel: https://"+dataAddr) {
		t.Errorf("dotsd dev does not print the data channel's URL:\n%s", out)
	}
	c := filepath.Join(dir, "clients", "alpha")
	_, leaf, err := pki.LoadKeyPair(filepath.Join(c, "cert.pem"), filepath.Join(c, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cuid := pki.CUID(leaf)
	root := ctl.DataChannel + "/restconf/data/ietf-dots-data-channel:dots-data"
	client := root + "/dots-client=" + cuid
	for _, st := range []struct{ method, url, body string }{
		{"POST", root, `{"ietf-dots-data-channel:dots-client":[{"cuid":"` + cuid + `"}]}`},
		{"POST", client, `{"ietf-dots-data-channel:aliases":{"alias":[{"name":"web","target-prefix":["203.0.113.5/32"]}]}}`},
		{"POST", client, `{"ietf-dots-data-channel:acls":{"acl":[{"name":"drop-192","aces":{"ace":[{"name":"r1","matches":{"ipv4":{"destination-ipv4-network":"203.0.113.0/25","source-ipv4-network":"192.0.2.0/24"}},"actions":{"forwarding":"drop"}}]}}]}}`},
	} {
		if code, body := curlData(t, dir, "alpha", st.method, st.url, st.body); code != 201 {
			t.Fatalf("%s %s: %d %s", st.method, st.url, code, body)
		}
	}
	first.kill(t)
	second := startDotsd(t, bin, args...)
	defer second.kill(t)
	for _, st := range []struct{ url, want string }{
		{client + "/aliases/alias=web", `"203.0.113.5/32"`},
		{client + "/acls/acl=drop-192", `"192.0.2.0/24"`},
	} {
		code, body := curlData(t, dir, "alpha", "GET", st.url, "")
		if code != 200 || !strings.Contains(body, st.want) || !strings.Contains(body, `"pending-lifetime":10080`) {
			t.Errorf("after SIGKILL, GET %s: %d %s", st.url, code, body)
		}
	}
}

func TestDataListenConfig(t *testing.T) {
	for _, tc := range []struct{ listen, err string }{
		{"", ""},
		{"127.0.0.1:8443", ""},
		{"[::1]:8443", ""},
		{"127.0.0.1", "data.listen"},
		{"127.0.0.1:0", "data.listen"},
		{"127.0.0.1:4646", "TCP port of signal.listen"},
		{"0.0.0.0:4646", "TCP port of signal.listen"},
		{"127.0.0.2:4646", ""},
	} {
		text := goodConfig
		if tc.listen != "" {
			text += "\ndata:\n  listen: \"" + tc.listen + "\"\n"
		}
		cfg, err := loadConfig(writeConfig(t, "dotsd.yaml", text))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.listen, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one naming %s", tc.listen, err, tc.err)
		case err == nil && cfg.Data.Listen != tc.listen:
			t.Errorf("%q: loaded %q", tc.listen, cfg.Data.Listen)
		}
	}
}
