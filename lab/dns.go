package lab

// Real authoritative DNS servers (BIND 9 named, Knot DNS knotd) as test
// primaries for the RFC 2136 + TSIG diversion backend (divert/dns).

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Names served by StartBIND and StartKnot. DNSZone may be updated with the
// key DNSKeyName; DNSOtherZone may not (no update-policy / acl).
const (
	DNSZone      = "svc.example."
	DNSOtherZone = "other.example."
	DNSKeyName   = "dots-key."
)

// The records both servers start with.
var dnsZones = map[string]string{
	"svc.example": `www  IN A    203.0.113.10
www  IN AAAA 2001:db8:6401::10
api  IN A    203.0.113.11
`,
	"other.example": `www  IN A    198.51.100.20
`,
}

// DNSOptions configures StartBIND and StartKnot. The zero value is ready.
type DNSOptions struct {
	Port   int    // on 127.0.0.1, UDP and TCP; 0 picks a free high port
	Secret string // base64 HMAC-SHA256 secret of DNSKeyName; "" generates one
}

// DNSServer is a running named or knotd serving DNSZone and DNSOtherZone.
type DNSServer struct {
	Kind    string // "bind" or "knot"
	Addr    string // "127.0.0.1:port"
	KeyName string // DNSKeyName
	Secret  string // base64
	Dir     string // configuration, zone files, journal, log

	conf    string // configuration file (also a unique pgrep pattern)
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	once    sync.Once
	stopErr error
}

// StartBIND starts named in the foreground on 127.0.0.1 (no -u: as root it
// stays root, which keeps the journal writable in a root-owned TempDir).
// It skips the test when named is missing (fails it when CI is set) and
// stops named at cleanup.
func StartBIND(t testing.TB, opts DNSOptions) *DNSServer {
	t.Helper()
	bin := dnsNeed(t, "bind9", "named")
	return dnsStart(t, "bind", opts, func(s *DNSServer, port int) []string {
		dnsWrite(t, s.Dir, "named.conf", dnsBINDConf(s.Dir, port))
		return []string{bin, "-g", "-4", "-n", "1", "-c", s.conf}
	})
}

// StartKnot starts knotd in the foreground on 127.0.0.1, like StartBIND.
func StartKnot(t testing.TB, opts DNSOptions) *DNSServer {
	t.Helper()
	bin := dnsNeed(t, "knot", "knotd")
	return dnsStart(t, "knot", opts, func(s *DNSServer, port int) []string {
		// The database directory must exist, or updates fail with SERVFAIL.
		if err := os.MkdirAll(filepath.Join(s.Dir, "db"), 0o755); err != nil {
			t.Fatal(err)
		}
		dnsWrite(t, s.Dir, "knot.conf", dnsKnotConf(s.Dir, port, s.Secret))
		return []string{bin, "-c", s.conf}
	})
}

func dnsStart(t testing.TB, kind string, opts DNSOptions, setup func(s *DNSServer, port int) []string) *DNSServer {
	t.Helper()
	secret := opts.Secret
	if secret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		secret = base64.StdEncoding.EncodeToString(b)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := opts.Port
		if port == 0 {
			port = dnsFreePort(t)
		}
		s := &DNSServer{Kind: kind, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), KeyName: DNSKeyName,
			Secret: secret, Dir: dnsDir(t, kind)}
		for zone, body := range dnsZones {
			dnsWrite(t, s.Dir, zone+".zone", dnsZoneFile(zone, body))
		}
		dnsWrite(t, s.Dir, "dots-key.conf", fmt.Sprintf("key \"dots-key\" {\n\talgorithm hmac-sha256;\n\tsecret %q;\n};\n", secret))
		s.conf = filepath.Join(s.Dir, map[string]string{"bind": "named.conf", "knot": "knot.conf"}[kind])
		argv := setup(s, port)
		lastErr = s.run(argv)
		if lastErr == nil {
			t.Cleanup(func() {
				if err := s.Stop(); err != nil {
					t.Error(err)
				}
			})
			return s
		}
		_ = s.Stop()
		if opts.Port != 0 || !strings.Contains(strings.ToLower(lastErr.Error()), "in use") {
			break
		}
	}
	t.Fatalf("lab: %s did not start: %v", kind, lastErr)
	return nil
}

// run starts argv and waits until both zones answer over TCP.
func (s *DNSServer) run(argv []string) error {
	s.logPath = filepath.Join(s.Dir, s.Kind+".log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Dir, s.cmd.Stdout, s.cmd.Stderr = s.Dir, logf, logf
	s.cmd.SysProcAttr = dnsSysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	s.done = make(chan struct{})
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.done:
			return fmt.Errorf("%s exited at start (%v):\n%s", argv[0], s.cmd.ProcessState, s.logTail())
		default:
		}
		if s.soaReady() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering on %s after 15 s:\n%s", argv[0], s.Addr, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *DNSServer) soaReady() bool {
	c := &dns.Client{Net: "tcp", Timeout: 500 * time.Millisecond}
	for _, z := range []string{DNSZone, DNSOtherZone} {
		m := new(dns.Msg)
		m.SetQuestion(z, dns.TypeSOA)
		r, _, err := c.Exchange(m, s.Addr)
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			return false
		}
	}
	return true
}

// Stop terminates the daemon (SIGTERM to its process group, SIGKILL after
// 5 s) and waits for it. It is idempotent; cleanup calls it.
func (s *DNSServer) Stop() error {
	s.once.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil || s.done == nil {
			return
		}
		pgid := s.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.stopErr = fmt.Errorf("lab: %s (pid %d) ignored SIGTERM for 5 s: killed", s.Kind, pgid)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-s.done
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL) // anything left in the group
	})
	return s.stopErr
}

// Lookup asks the server for name's qtype records with dig (miekg/dns if
// dig is missing), without recursion, and returns the values sorted
// ("203.0.113.10"). A name without such records gives an empty list.
func (s *DNSServer) Lookup(ctx context.Context, name string, qtype uint16) ([]string, error) {
	host, port, _ := net.SplitHostPort(s.Addr)
	var out []string
	if dig, err := exec.LookPath("dig"); err == nil {
		b, err := dnsRun(ctx, dig, "+short", "+norecurse", "+time=2", "+tries=2", "-p", port, "@"+host,
			name, dns.TypeToString[qtype])
		if err != nil {
			return nil, err
		}
		out = strings.Fields(string(b))
	} else {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		r, _, err := (&dns.Client{Timeout: 2 * time.Second}).ExchangeContext(ctx, m, s.Addr)
		if err != nil {
			return nil, fmt.Errorf("lab: lookup %s: %w", name, err)
		}
		for _, rr := range r.Answer {
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Nsupdate runs nsupdate (TCP, signed with the server's key) with the
// given commands ("zone svc.example.", "update delete www.svc.example. A",
// …) between a "server" line and "send": an operator's manual change.
func (s *DNSServer) Nsupdate(ctx context.Context, commands ...string) error {
	host, port, _ := net.SplitHostPort(s.Addr)
	bin, err := exec.LookPath("nsupdate")
	if err != nil {
		return fmt.Errorf("lab: nsupdate not installed (apt-get install bind9-dnsutils): %w", err)
	}
	script := "server " + host + " " + port + "\n" + strings.Join(commands, "\n") + "\nsend\n"
	cmd := exec.CommandContext(ctx, bin, "-v", "-t", "5", "-k", filepath.Join(s.Dir, "dots-key.conf"))
	cmd.Stdin = strings.NewReader(script)
	cmd.WaitDelay = time.Second
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: nsupdate: %v: %s", err, b)
	}
	return nil
}

// Running reports whether a process is still running with this server's
// configuration file on its command line (pgrep -f), to check that nothing
// is left over.
func (s *DNSServer) Running() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, _ := exec.CommandContext(ctx, "pgrep", "-f", s.conf).Output()
	return len(strings.TrimSpace(string(b))) > 0
}

// Log returns the daemon's output so far.
func (s *DNSServer) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func (s *DNSServer) logTail() string {
	l := s.Log()
	if len(l) > 3000 {
		l = l[len(l)-3000:]
	}
	return l
}

func dnsRun(ctx context.Context, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = time.Second
	b, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return b, fmt.Errorf("lab: %s %s: %w (output %q)", filepath.Base(bin), strings.Join(args, " "), err, b)
	}
	return b, nil
}

// dnsNeed finds a daemon in PATH or the sbin directories (not in a
// non-root PATH on Debian); it skips the test, or fails it if CI is set.
func dnsNeed(t testing.TB, pkg, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("lab: %s not installed: apt-get install %s", name, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// dnsDir is t.TempDir(), or a shorter directory when that one is too long
// for knotd's control socket (Unix socket paths are limited to 108 bytes).
func dnsDir(t testing.TB, kind string) string {
	dir := t.TempDir()
	if len(dir) < 80 {
		return dir
	}
	dir, err := os.MkdirTemp("", "lab-"+kind+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func dnsWrite(t testing.TB, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dnsFreePort returns a port free for both TCP and UDP on 127.0.0.1.
func dnsFreePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", l.Addr().String())
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatal("lab: no free port for TCP and UDP on 127.0.0.1")
	return 0
}

func dnsZoneFile(zone, body string) string {
	return fmt.Sprintf(`$ORIGIN %[1]s.
$TTL 300
@    IN SOA ns.%[1]s. hostmaster.%[1]s. 1 3600 600 86400 60
@    IN NS  ns.%[1]s.
ns   IN A   127.0.0.1
%[2]s`, zone, body)
}

func dnsBINDConf(dir string, port int) string {
	return fmt.Sprintf(`include %[1]q;
options {
	directory %[2]q;
	pid-file %[3]q;
	session-keyfile %[4]q;
	managed-keys-directory %[2]q;
	listen-on port %[5]d { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
};
controls { };
zone "svc.example" { type primary; file "svc.example.zone"; update-policy { grant dots-key zonesub ANY; }; };
zone "other.example" { type primary; file "other.example.zone"; };
`, filepath.Join(dir, "dots-key.conf"), dir, filepath.Join(dir, "named.pid"), filepath.Join(dir, "session.key"), port)
}

func dnsKnotConf(dir string, port int, secret string) string {
	return fmt.Sprintf(`server:
    rundir: %[1]q
    listen: 127.0.0.1@%[2]d
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: knot.sock
log:
  - target: stderr
    any: info
database:
    storage: %[3]q
key:
  - id: dots-key
    algorithm: hmac-sha256
    secret: %[4]s
acl:
  - id: dots_update
    key: dots-key
    action: update
template:
  - id: default
    storage: %[1]q
    zonefile-sync: -1
    journal-content: all
zone:
  - domain: svc.example
    file: svc.example.zone
    acl: dots_update
  - domain: other.example
    file: other.example.zone
`, dir, port, filepath.Join(dir, "db"), secret)
}
