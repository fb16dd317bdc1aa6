package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/levee-dots/levee/dots"
	"github.com/levee-dots/levee/dotsserver/dotstest"
	"github.com/levee-dots/levee/store"
)

func (e *ctlEnv) stateOnDisk(t *testing.T) ctlState {
	t.Helper()
	st, err := readState(e.state)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestMitigateAfterCUIDCollision: the server has alpha's derived cuid bound
// to another key; dotsctl gets 4.09 cuid-collision, makes a new cuid, keeps
// it in its state file and sends the request again (RFC 9132 §4.4.1); the
// next run speaks as the kept cuid at once.
func TestMitigateAfterCUIDCollision(t *testing.T) {
	e := newCollidedCtlEnv(t)
	derived := e.srv.Dev.Clients["alpha"].CUID
	contains(t, "mitigate after a collision", e.ok(t, "mitigate", "--target", "203.0.113.10/32"), "mid 1 created (2.01)")
	st := e.stateOnDisk(t)
	if len(st.CUID) != 22 || st.CUID == derived || st.CUIDReplaces != derived {
		t.Fatalf("state cuid %q replacing %q: want a new 22-character cuid replacing %s", st.CUID, st.CUIDReplaces, derived)
	}
	contains(t, "second mitigate", e.ok(t, "mitigate", "--target", "203.0.113.11/32"), "mid 2 created (2.01)")
	if again := e.stateOnDisk(t); again.CUID != st.CUID {
		t.Fatalf("state cuid %q after the second run, want %q kept", again.CUID, st.CUID)
	}
	var mids []uint32
	for _, r := range e.srv.Srv.Service().AllMitigations() {
		if r.CUID != st.CUID {
			t.Fatalf("server holds mid %d under cuid %s, want %s", r.MID, r.CUID, st.CUID)
		}
		mids = append(mids, r.MID)
	}
	if !slices.Equal(mids, []uint32{1, 2}) {
		t.Fatalf("server holds mids %v, want [1 2]", mids)
	}
	out := e.ok(t, "status")
	row(t, out, 1)
	row(t, out, 2)
}

// TestCUIDCollisionDuringRollover: the cuid collision comes while the mid
// counter rolls over (the state file locked): the new cuid is kept and the
// mids restart at 0.
func TestCUIDCollisionDuringRollover(t *testing.T) {
	e := newCollidedCtlEnv(t)
	atRollover(t, e)
	contains(t, "mitigate", e.ok(t, "mitigate", "--target", "203.0.113.10/32"), "mid 0 created (2.01)")
	st := e.stateOnDisk(t)
	if st.CUID == "" || st.CUIDReplaces != e.srv.Dev.Clients["alpha"].CUID || st.NextMID == nil || *st.NextMID != 1 {
		t.Fatalf("state %+v: want the new cuid kept and next_mid 1", st)
	}
	recs := e.srv.Srv.Service().AllMitigations()
	if len(recs) != 1 || recs[0].CUID != st.CUID || recs[0].MID != 0 {
		t.Fatalf("server holds %+v, want mid 0 under %s", recs, st.CUID)
	}
}

// TestCUIDOfState: the kept cuid replaces only the cuid it was made for; a
// cuid configured since is used as configured.
func TestCUIDOfState(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	spki := []byte("spki")
	derived := dots.CUIDFromSPKI(spki)
	for _, tc := range []struct {
		name, configured, state, want string
	}{
		{"no state", "", `{}`, ""},
		{"kept after a collision on the derived cuid", "", `{"cuid":"new","cuid_replaces":"` + derived + `"}`, "new"},
		{"kept after a collision on the configured cuid", "conf", `{"cuid":"new","cuid_replaces":"conf"}`, "new"},
		{"configured since", "conf2", `{"cuid":"new","cuid_replaces":"conf"}`, "conf2"},
		{"configured since, derived collided", "conf", `{"cuid":"new","cuid_replaces":"` + derived + `"}`, "conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(state, []byte(tc.state), 0o600); err != nil {
				t.Fatal(err)
			}
			c := &ctlConfig{CUID: tc.configured, State: state}
			if got, err := c.cuid(spki); err != nil || got != tc.want {
				t.Fatalf("cuid = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestMIDRollover: once a mid has reached 3/4 of 2^32-1 and no attack
// mitigation is active, the next mitigate restarts the mids at 0: the
// preconfigured requests (trigger-mitigation false) are created again as
// mids 0, 1, ... and the new request follows (RFC 9132 §4.4.1). An active
// mitigation holds the counter back.
func TestMIDRollover(t *testing.T) {
	pre1, pre2 := midRollover-1, midRollover
	for _, tc := range []struct {
		name     string
		active   bool
		wantMID  uint32
		wantMIDs map[uint32]string // mid -> target
	}{
		{"no mitigation active", false, 2, map[uint32]string{0: "203.0.113.20/32", 1: "203.0.113.21/32", 2: "203.0.113.30/32"}},
		{"a mitigation active", true, midRollover + 1,
			map[uint32]string{5: "203.0.113.40/32", pre1: "203.0.113.20/32", pre2: "203.0.113.21/32", midRollover + 1: "203.0.113.30/32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCtlEnv(t)
			if err := updateState(e.state, func(st *ctlState) error {
				n := uint64(pre1)
				st.NextMID = &n
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if tc.active {
				contains(t, "active mitigation", e.ok(t, "mitigate", "--mid", "5", "--target", "203.0.113.40/32"), "mid 5 created")
			}
			contains(t, "first preconfigured", e.ok(t, "mitigate", "--on-signal-loss", "--lifetime", "600", "--target", "203.0.113.20/32"),
				fmt.Sprintf("mid %d created", pre1))
			contains(t, "second preconfigured", e.ok(t, "mitigate", "--on-signal-loss", "--target", "203.0.113.21/32"),
				fmt.Sprintf("mid %d created", pre2))
			contains(t, "after the rollover point", e.ok(t, "mitigate", "--target", "203.0.113.30/32"),
				fmt.Sprintf("mid %d created (2.01)", tc.wantMID))
			if n := e.nextMIDOnDisk(t); n != tc.wantMID+1 {
				t.Fatalf("next_mid %d, want %d", n, tc.wantMID+1)
			}
			got := map[uint32]string{}
			for _, sc := range decodeJSON(t, e.ok(t, "-o", "json", "status")).Body.Scope.Scope {
				got[sc.MID] = sc.TargetPrefix[0]
				preconfigured := sc.TargetPrefix[0] == "203.0.113.20/32" || sc.TargetPrefix[0] == "203.0.113.21/32"
				if preconfigured && sc.Status != dots.StatusSignalLoss.String() {
					t.Errorf("mid %d (%s): status %s, want %s", sc.MID, sc.TargetPrefix[0], sc.Status, dots.StatusSignalLoss)
				}
				if sc.TargetPrefix[0] == "203.0.113.20/32" && (sc.Lifetime > 600 || sc.Lifetime < 590) {
					t.Errorf("mid %d: lifetime %d, want what was left of 600", sc.MID, sc.Lifetime)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantMIDs) {
				t.Fatalf("mids on the server %v, want %v", got, tc.wantMIDs)
			}
		})
	}
}

// TestStatusWatchKeepsNewCUID: a watch that met a cuid collision speaks as
// its new cuid in the sessions that follow, and so sees the mitigations
// made under it.
func TestStatusWatchKeepsNewCUID(t *testing.T) {
	e := newCollidedCtlEnv(t)
	w := e.startWatch(t, "--timeout", "2s", "status", "--watch", "--interval", "1s")
	deadline := time.Now().Add(10 * time.Second)
	for e.stateOnDisk(t).CUID == "" {
		if time.Now().After(deadline) {
			t.Fatalf("the watch kept no new cuid:\n%s\nstderr:\n%s", w.out.String(), w.errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	kept := e.stateOnDisk(t).CUID
	e.ok(t, "mitigate", "--target", "203.0.113.31/32") // under the kept cuid
	waitFor(t, "watch, the new mitigation", &w.out, "attack-mitigation-in-progress")

	e.srv.Srv.Close()
	waitFor(t, "watch, server gone", &w.out, "reconnecting (")
	e.restartServer(t)
	lost := strings.LastIndex(w.out.String(), "reconnecting (")
	deadline = time.Now().Add(15 * time.Second)
	for !strings.Contains(w.out.String()[lost:], "attack-mitigation-in-progress") {
		if time.Now().After(deadline) {
			t.Fatalf("after reconnecting the watch does not see the mitigation (state cuid %s, kept %s):\n%s",
				e.stateOnDisk(t).CUID, kept, w.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.stop(t)
	if st := e.stateOnDisk(t); st.CUID != kept {
		t.Fatalf("state cuid %s, want %s kept", st.CUID, kept)
	}
}

// TestAgentRolloverAfterCUIDCollision: a mitigate served by the agent meets
// the cuid collision during the mid rollover (the state file locked by the
// agent's own process): the new cuid is kept and the mids restart at 0.
func TestAgentRolloverAfterCUIDCollision(t *testing.T) {
	e := newCollidedCtlEnv(t)
	atRollover(t, e)
	a := startAgent(t, e)
	contains(t, "mitigate through the agent", e.ok(t, "mitigate", "--target", "203.0.113.10/32"), "mid 0 created (2.01)")
	if got := strings.Count(a.out.String(), "agent: served"); got != 1 {
		t.Errorf("the agent served %d commands, want 1:\n%s", got, a.out.String())
	}
	st := e.stateOnDisk(t)
	if st.CUID == "" || st.CUIDReplaces != e.srv.Dev.Clients["alpha"].CUID || st.NextMID == nil || *st.NextMID != 1 {
		t.Fatalf("state %+v: want the new cuid kept and next_mid 1", st)
	}
}

// newCollidedCtlEnv is newCtlEnv with alpha's derived cuid bound to
// another key in the server's store: alpha's first /mitigate request meets
// a cuid collision.
func newCollidedCtlEnv(t *testing.T) *ctlEnv {
	t.Helper()
	return newCtlEnvWith(t, dotstest.Options{Seed: func(s *dotstest.Server) {
		op := store.Op{Bucket: "cuid-bindings", Key: s.Dev.Clients["alpha"].CUID, Value: []byte("another-key")}
		if err := s.Store.Apply(context.Background(), op); err != nil {
			t.Fatal(err)
		}
	}})
}

// atRollover sets e's mid counter past the rollover point.
func atRollover(t *testing.T, e *ctlEnv) {
	t.Helper()
	if err := updateState(e.state, func(st *ctlState) error {
		n := uint64(midRollover) + 1
		st.NextMID = &n
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
