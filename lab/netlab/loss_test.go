//go:build linux

package netlab_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/levee-dots/levee/lab/netlab"
)

// lossBins builds dotsd and dotsctl for the loss lab.
func lossBins(t *testing.T) netlab.Bins {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: the loss lab creates network namespaces, which needs root (CI runs as root)")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/levee-dots/levee/cmd/dotsd", "github.com/levee-dots/levee/cmd/dotsctl")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return netlab.Bins{Dotsd: filepath.Join(dir, "dotsd"), Dotsctl: filepath.Join(dir, "dotsctl")}
}

// TestLossLab: with 50% random loss each way at the client, the loss table
// drops about half of what crosses it in both directions, one-shot
// `dotsctl mitigate` commands still get some 2.01s within 10 s, and dotsd
// holds every request it acknowledged. (How many get through is a figure
// for `make bench`, not a test.)
func TestLossLab(t *testing.T) {
	bins := lossBins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := netlab.RunLoss(ctx, netlab.LossOptions{Bins: bins, Dir: t.TempDir(), Loss: 50, Requests: 12,
		Spacing: 250 * time.Millisecond, Window: 10 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failed {
		t.Logf("failed: %s", f)
	}
	for dir, c := range res.Counts {
		if c.Seen < 50 {
			t.Fatalf("%s: the loss table saw %d packets: the traffic did not cross it", dir, c.Seen)
		}
		if share := float64(c.Dropped) / float64(c.Seen); share < 0.3 || share > 0.7 {
			t.Errorf("%s: dropped %d of %d (%.0f%%), want about 50%%", dir, c.Dropped, c.Seen, 100*share)
		}
	}
	if len(res.Acked) == 0 {
		t.Fatal("no request acknowledged under 50% loss")
	}
	if res.Stored != len(res.Acked) {
		t.Errorf("dotsd holds %d of the %d acknowledged requests", res.Stored, len(res.Acked))
	}
}

// TestLossLabAgent: with `dotsctl agent` holding its session from before
// the loss, every `dotsctl mitigate` goes over that session (the agent
// serves each one; none opens its own), and dotsd holds every request it
// acknowledged.
func TestLossLabAgent(t *testing.T) {
	bins := lossBins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := netlab.RunLoss(ctx, netlab.LossOptions{Bins: bins, Dir: t.TempDir(), Loss: 50, Requests: 12,
		Spacing: 250 * time.Millisecond, Window: 10 * time.Second, Agent: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failed {
		t.Logf("failed: %s", f)
	}
	if res.Served != res.Requests {
		t.Errorf("the agent served %d of %d commands", res.Served, res.Requests)
	}
	if len(res.Acked) == 0 {
		t.Fatal("no request acknowledged through the agent under 50% loss")
	}
	if res.Stored != len(res.Acked) {
		t.Errorf("dotsd holds %d of the %d acknowledged requests", res.Stored, len(res.Acked))
	}
}

// TestLossLabHeavyLoss: one-shot commands with heavy-loss: true in their
// dotsctl.yaml write every datagram twice, so dotsd's end of the link sees
// far more than the client's (with the defaults the client's repeats alone
// make the difference: 1.2 to 1.4 times), and dotsd holds every request it
// acknowledged.
func TestLossLabHeavyLoss(t *testing.T) {
	bins := lossBins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := netlab.RunLoss(ctx, netlab.LossOptions{Bins: bins, Dir: t.TempDir(), Loss: 50, Requests: 12,
		Spacing: 250 * time.Millisecond, Window: 10 * time.Second, HeavyLoss: true, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failed {
		t.Logf("failed: %s", f)
	}
	up, down := res.Counts["to-server"].Seen, res.Counts["to-client"].Seen
	if down == 0 || float64(up) < 1.6*float64(down) {
		t.Errorf("dotsd's ingress saw %d packets, the client's %d: want at least 1.6 times as many toward dotsd (each datagram twice)", up, down)
	}
	if len(res.Acked) == 0 {
		t.Fatal("no request acknowledged with heavy-loss under 50% loss")
	}
	if res.Stored != len(res.Acked) {
		t.Errorf("dotsd holds %d of the %d acknowledged requests", res.Stored, len(res.Acked))
	}
}
