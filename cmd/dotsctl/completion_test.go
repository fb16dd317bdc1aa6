package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"completion", shell}, &out, &errOut); err != nil {
		t.Fatalf("dotsctl completion %s: %v\n%s", shell, err, errOut.String())
	}
	return out.String()
}

// TestCompletionCoversCommands: each script names every command of
// dotsctl, every subcommand, and every option the usage text shows.
func TestCompletionCoversCommands(t *testing.T) {
	options := regexp.MustCompile(`--[a-z][a-z-]+`).FindAllString(usage, -1)
	if len(options) < 15 {
		t.Fatalf("found only %d options in the usage text: %q", len(options), options)
	}
	for _, shell := range completionShells {
		t.Run(shell, func(t *testing.T) {
			script := completionScript(t, shell)
			words := map[string]bool{}
			for _, w := range regexp.MustCompile(`[\w-]+`).FindAllString(script, -1) {
				words[w] = true
			}
			for name := range commands() {
				if !words[name] {
					t.Errorf("command %s is missing", name)
				}
				for _, sub := range subcommands[name] {
					if !words[sub] {
						t.Errorf("subcommand %s %s is missing", name, sub)
					}
				}
			}
			for _, o := range options {
				name := strings.TrimPrefix(o, "--")
				if !words["--"+name] && !(shell == "fish" && strings.Contains(script, "-l "+name+" ")) {
					t.Errorf("option %s of the usage text is missing", o)
				}
			}
		})
	}
}

// TestCompletionBash runs the bash script's completion function on
// command lines and checks what it offers.
func TestCompletionBash(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	script := filepath.Join(t.TempDir(), "dotsctl.bash")
	if err := os.WriteFile(script, []byte(completionScript(t, "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string // the last word is the one completed
		want string
	}{
		{"dotsctl mit", "mitigate"},
		{"dotsctl --config x.yaml -o json st", "status"},
		{"dotsctl --timeout 5s mitigate --tar", "--target"},
		{"dotsctl mitigate --target 203.0.113.1/32 --on", "--on-signal-loss"},
		{"dotsctl status --w", "--watch"},
		{"dotsctl session s", "set"},
		{"dotsctl session set --s", "--sid"},
		{"dotsctl completion f", "fish"},
		{"dotsctl acl act", "activate"},
		{"dotsctl acl create --tcp", "--tcp-flags"},
		{"dotsctl alias create --fq", "--fqdn"},
		{"dotsctl -o j", "json"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			words := strings.Fields(tc.line)
			prog := "source " + script + "\nCOMP_WORDS=(" + strings.Join(words, " ") + ")\nCOMP_CWORD=" +
				strconv.Itoa(len(words)-1) + "\n_dotsctl\necho \"${COMPREPLY[*]}\"\n"
			out, err := exec.Command(bash, "--norc", "--noprofile", "-c", prog).CombinedOutput()
			if err != nil {
				t.Fatalf("bash: %v\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tc.want {
				t.Errorf("offered %q, want %q", got, tc.want)
			}
		})
	}
}

// TestCompletionSyntax has zsh and fish check their scripts, where they
// are installed.
func TestCompletionSyntax(t *testing.T) {
	for _, tc := range []struct{ shell, flag string }{{"bash", "-n"}, {"zsh", "-n"}, {"fish", "--no-execute"}} {
		t.Run(tc.shell, func(t *testing.T) {
			sh, err := exec.LookPath(tc.shell)
			if err != nil {
				t.Skipf("%s is not installed", tc.shell)
			}
			path := filepath.Join(t.TempDir(), "dotsctl."+tc.shell)
			if err := os.WriteFile(path, []byte(completionScript(t, tc.shell)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(sh, tc.flag, path).CombinedOutput(); err != nil {
				t.Fatalf("%s %s: %v\n%s", tc.shell, tc.flag, err, out)
			}
		})
	}
}
