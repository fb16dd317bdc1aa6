package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// kv is the method set shared by DB and Memory.
type kv interface {
	Apply(ctx context.Context, ops ...Op) error
	ForEach(bucket string, fn func(key string, value []byte) error) error
	Get(bucket, key string) ([]byte, bool, error)
	Close() error
}

// backends runs the same test body against DB and Memory.
var backends = []struct {
	name string
	open func(t *testing.T) kv
}{
	{"DB", func(t *testing.T) kv { return openTemp(t) }},
	{"Memory", func(t *testing.T) kv { return NewMemory() }},
}

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "state", "levee.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func put(b, k, v string) Op { return Op{Bucket: b, Key: k, Value: []byte(v)} }
func del(b, k string) Op    { return Op{Bucket: b, Key: k, Delete: true} }

// dump returns bucket's contents as "k=v" joined by ",", in ForEach order.
func dump(t *testing.T, s kv, bucket string) string {
	t.Helper()
	var parts []string
	if err := s.ForEach(bucket, func(k string, v []byte) error {
		parts = append(parts, k+"="+string(v))
		return nil
	}); err != nil {
		t.Fatalf("ForEach(%q): %v", bucket, err)
	}
	return strings.Join(parts, ",")
}

func TestPutGetDeleteForEach(t *testing.T) {
	cases := []struct {
		name   string
		ops    [][]Op // one Apply per element
		bucket string
		want   string // dump of bucket afterwards
	}{
		{"put", [][]Op{{put("m", "a", "1")}}, "m", "a=1"},
		{"sorted", [][]Op{{put("m", "c", "3"), put("m", "a", "1")}, {put("m", "b", "2")}}, "m", "a=1,b=2,c=3"},
		{"overwrite", [][]Op{{put("m", "a", "1")}, {put("m", "a", "2")}}, "m", "a=2"},
		{"delete", [][]Op{{put("m", "a", "1"), put("m", "b", "2")}, {del("m", "a")}}, "m", "b=2"},
		{"put then delete in one apply", [][]Op{{put("m", "a", "1"), del("m", "a")}}, "m", ""},
		{"delete missing key", [][]Op{{put("m", "a", "1")}, {del("m", "zz")}}, "m", "a=1"},
		{"delete missing bucket", [][]Op{{del("nope", "a")}}, "nope", ""},
		{"empty value", [][]Op{{{Bucket: "m", Key: "e"}}}, "m", "e="},
		{"buckets are separate", [][]Op{{put("m", "a", "1"), put("s", "a", "2")}}, "s", "a=2"},
		{"missing bucket", nil, "m", ""},
	}
	for _, be := range backends {
		for _, tc := range cases {
			t.Run(be.name+"/"+tc.name, func(t *testing.T) {
				s := be.open(t)
				for _, ops := range tc.ops {
					if err := s.Apply(context.Background(), ops...); err != nil {
						t.Fatalf("Apply: %v", err)
					}
				}
				if got := dump(t, s, tc.bucket); got != tc.want {
					t.Fatalf("ForEach = %q, want %q", got, tc.want)
				}
				// Get must agree with ForEach.
				want := map[string]string{}
				for _, p := range strings.Split(tc.want, ",") {
					if k, v, ok := strings.Cut(p, "="); ok {
						want[k] = v
					}
				}
				for _, k := range []string{"a", "b", "c", "e", "zz"} {
					v, ok, err := s.Get(tc.bucket, k)
					w, wok := want[k]
					if err != nil || ok != wok || string(v) != w || (ok && v == nil) {
						t.Errorf("Get(%q,%q) = %q,%v,%v; want %q,%v", tc.bucket, k, v, ok, err, w, wok)
					}
				}
			})
		}
	}
}

func TestCopiesAndForEachError(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := be.open(t)
			in := []byte("orig")
			if err := s.Apply(context.Background(), Op{Bucket: "m", Key: "a", Value: in}, put("m", "b", "2")); err != nil {
				t.Fatal(err)
			}
			copy(in, "XXXX") // caller reuses its buffer
			v, _, _ := s.Get("m", "a")
			copy(v, "YYYY") // caller scribbles on the returned copy
			if v, _, _ := s.Get("m", "a"); string(v) != "orig" {
				t.Fatalf("Get = %q, want %q", v, "orig")
			}
			stop := errors.New("stop")
			n := 0
			err := s.ForEach("m", func(string, []byte) error { n++; return stop })
			if !errors.Is(err, stop) || n != 1 {
				t.Fatalf("ForEach = %v after %d calls, want stop after 1", err, n)
			}
		})
	}
}

func TestRejectsEmptyNamesAtomically(t *testing.T) {
	cases := []struct {
		name string
		bad  Op
		want string
	}{
		{"empty bucket", Op{Key: "k", Value: []byte("v")}, "empty bucket"},
		{"empty key", Op{Bucket: "m", Value: []byte("v")}, "empty key"},
		{"empty key delete", Op{Bucket: "m", Delete: true}, "empty key"},
	}
	for _, be := range backends {
		for _, tc := range cases {
			t.Run(be.name+"/"+tc.name, func(t *testing.T) {
				s := be.open(t)
				err := s.Apply(context.Background(), put("m", "good", "1"), tc.bad)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Apply = %v, want error containing %q", err, tc.want)
				}
				if got := dump(t, s, "m"); got != "" {
					t.Fatalf("bucket m = %q after rejected Apply, want empty", got)
				}
			})
		}
	}
}

// A failure inside the bbolt transaction (key too large) rolls back the
// other ops of the same Apply.
func TestAtomicInTransactionFailure(t *testing.T) {
	db := openTemp(t)
	huge := strings.Repeat("k", 40000)
	err := db.Apply(context.Background(), put("m", "a", "1"), put("other", "b", "2"), put("m", huge, "x"))
	if !errors.Is(err, berrors.ErrKeyTooLarge) || !strings.HasPrefix(err.Error(), "store: apply: ") {
		t.Fatalf("Apply = %v, want wrapped ErrKeyTooLarge", err)
	}
	for _, b := range []string{"m", "other"} {
		if got := dump(t, db, b); got != "" {
			t.Fatalf("bucket %q = %q after failed Apply, want empty", b, got)
		}
	}
}

// When a combined transaction fails, each request is retried alone, so only
// the bad one fails.
func TestBatchFallbackIsolatesBadRequest(t *testing.T) {
	db := openTemp(t)
	mk := func(ops ...Op) *request {
		return &request{ctx: context.Background(), ops: ops, reply: make(chan error, 1)}
	}
	good1 := mk(put("m", "a", "1"))
	bad := mk(put("m", "b", "2"), put("m", strings.Repeat("k", 40000), "x"))
	good2 := mk(put("m", "c", "3"), del("m", "a"), put("m", "d", "4"))
	db.commit([]*request{good1, bad, good2})
	if err := <-good1.reply; err != nil {
		t.Errorf("good1: %v", err)
	}
	if err := <-bad.reply; !errors.Is(err, berrors.ErrKeyTooLarge) {
		t.Errorf("bad: %v, want ErrKeyTooLarge", err)
	}
	if err := <-good2.reply; err != nil {
		t.Errorf("good2: %v", err)
	}
	if got, want := dump(t, db, "m"), "c=3,d=4"; got != want {
		t.Fatalf("bucket m = %q, want %q", got, want)
	}
}

func TestReopenFindsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "levee.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Apply(context.Background(), put("mitigations", "cuid/1", "scope"), put("config", "sid", "7")); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&^want != 0 {
			t.Errorf("%s: mode %v, err %v; want at most %v", p, fi.Mode().Perm(), err, want)
		}
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := dump(t, db, "mitigations") + ";" + dump(t, db, "config"); got != "cuid/1=scope;sid=7" {
		t.Fatalf("after reopen: %q", got)
	}
}

// A canceled context writes nothing; after Close everything is ErrClosed.
func TestCanceledAndClosed(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := be.open(t)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := s.Apply(ctx, put("m", "a", "1")); !errors.Is(err, context.Canceled) {
				t.Fatalf("Apply = %v, want context.Canceled", err)
			}
			if got := dump(t, s, "m"); got != "" {
				t.Fatalf("bucket m = %q after canceled Apply, want empty", got)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if err := s.Apply(context.Background(), put("m", "b", "2")); !errors.Is(err, ErrClosed) {
				t.Fatalf("Apply after Close = %v, want ErrClosed", err)
			}
			if _, _, err := s.Get("m", "a"); !errors.Is(err, ErrClosed) {
				t.Fatalf("Get after Close = %v, want ErrClosed", err)
			}
			if err := s.ForEach("m", func(string, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
				t.Fatalf("ForEach after Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestConcurrentApply(t *testing.T) {
	const goroutines, each = 100, 20
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := be.open(t)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						k := fmt.Sprintf("g%03d-%03d", g, i)
						if err := s.Apply(context.Background(), put("m", k, k), put("n", k, "")); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			for _, b := range []string{"m", "n"} {
				n := 0
				s.ForEach(b, func(k string, v []byte) error {
					if b == "m" && k != string(v) {
						t.Errorf("%s: value %q", k, v)
					}
					n++
					return nil
				})
				if n != goroutines*each {
					t.Fatalf("bucket %s has %d keys, want %d", b, n, goroutines*each)
				}
			}
			if db, ok := s.(*DB); ok {
				t.Logf("%d Apply calls in %d transactions", goroutines*each, db.commits.Load())
			}
		})
	}
}

func TestOpenLockedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "levee.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const timeout = 100 * time.Millisecond
	start := time.Now()
	db2, err := Open(path, Options{OpenTimeout: timeout})
	elapsed := time.Since(start)
	if err == nil {
		db2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !strings.Contains(err.Error(), "locked by another process") || !errors.Is(err, berrors.ErrTimeout) {
		t.Fatalf("Open = %v, want lock error", err)
	}
	if elapsed > timeout+2*time.Second { // bbolt may give up one retry (50ms) early
		t.Fatalf("Open gave up after %v, want about %v", elapsed, timeout)
	}
}

const helperEnv = "LEVEE_STORE_HELPER_DB"

// TestHelperProcess is the child of TestDurabilityAcrossKill: it applies
// records one by one and prints "ok <n>" after each Apply returns.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestDurabilityAcrossKill")
	}
	db, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range 100000 {
		if err := db.Apply(context.Background(), put("m", fmt.Sprintf("k%06d", i), fmt.Sprint(i))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Fprintf(os.Stdout, "ok %d\n", i) // os.Stdout is unbuffered
	}
	os.Exit(0)
}

// TestDurabilityAcrossKill SIGKILLs a child that is writing and checks that
// every record it acknowledged survived.
func TestDurabilityAcrossKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "levee.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "ok %d", &n); err != nil {
			continue
		}
		acked = append(acked, n)
		if len(acked) == 50 {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
				t.Fatal(err)
			}
		}
	}
	// Lines read after Kill were printed before the child died: also acked.
	werr := cmd.Wait()
	t.Logf("child: %v; %d acknowledged; stderr: %q", werr, len(acked), stderr.String())
	if len(acked) < 50 {
		t.Fatalf("child acknowledged only %d records", len(acked))
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, n := range acked {
		v, ok, err := db.Get("m", fmt.Sprintf("k%06d", n))
		if err != nil || !ok || string(v) != fmt.Sprint(n) {
			t.Fatalf("acknowledged record %d: got %q,%v,%v", n, v, ok, err)
		}
	}
	total := 0
	db.ForEach("m", func(string, []byte) error { total++; return nil })
	t.Logf("%d records on disk after kill", total)
}
