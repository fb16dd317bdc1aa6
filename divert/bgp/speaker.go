package bgp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	gbgp "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/levee-dots/levee/divert"
)

// Backend is the embedded BGP speaker.
type Backend struct {
	cfg     Config
	log     *slog.Logger
	updates divert.Updates
	s       *server.BgpServer
	gobgpLV *slog.LevelVar // GoBGP's log level

	mu      sync.Mutex
	entries map[divert.Key]*entry
	routes  map[string]*route
	nlri    nlriIndex             // the routes of each NLRI
	peers   map[string]*peerState // by neighbor address
	started bool
	cancel  context.CancelFunc
	// Counters kept with entries and routes, so that the safety rails do
	// not walk every mitigation on each Apply.
	domainRoutes map[string]int // routes of the entries of each domain
	flowCount    int            // FlowSpec routes in routes
	buckets      updateBuckets
	pacer        withdrawPacer
	// announced are the neighbors' UPDATE counters when an announcement
	// was last queued and not yet seen sent (see order.go); seq numbers
	// the outcomes.
	announced            map[string]uint64
	markAt, lastAnnounce time.Time
	seq                  uint64
	// exportGen numbers the export policies SetNeighbors installs
	// (neighbors.go); 0 is exportPolicyName.
	exportGen int
}

type entry struct {
	key     divert.Key
	domain  string
	kind    string
	routes  []string // route ids
	note    string   // from the plan: why some routes are of another kind
	applied divert.Applied
}

type route struct {
	id     string // family + NLRI text
	kind   string
	family gbgp.Family
	path   *apiutil.Path
	text   string // for logs and status
	refs   map[divert.Key]bool
	bucket int // update bucket of a FlowSpec route (see updateBuckets)
}

type peerState struct {
	n           Neighbor
	established bool
	negotiated  map[gbgp.Family]bool
	sessions    int // times the session reached ESTABLISHED
}

// New starts the speaker (no neighbors yet: they are added by Start or the
// first Sync, after the active routes are back in the RIB).
func New(ctx context.Context, cfg Config, log *slog.Logger, updates divert.Updates) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	b := &Backend{cfg: cfg, log: log, updates: updates, entries: map[divert.Key]*entry{}, routes: map[string]*route{}, nlri: nlriIndex{},
		peers: map[string]*peerState{}, domainRoutes: map[string]int{}}
	b.gobgpLV = lv
	gobgpLog := slog.New(levelHandler{lv, log.Handler()}).With("diverter", "bgp")
	b.s = server.NewBgpServer(server.LoggerOption(gobgpLog, lv))
	go b.s.Serve()
	port := cfg.ListenPort
	if port == 0 {
		port = -1
	}
	if err := b.s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: cfg.LocalAS, RouterId: cfg.RouterID,
		ListenPort: port, ListenAddresses: cfg.ListenAddresses}}); err != nil {
		b.s.Stop()
		return nil, fmt.Errorf("divert/bgp: start speaker: %w", err)
	}
	if err := b.installPolicy(ctx); err != nil {
		b.s.Stop()
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	if err := b.s.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: b.onPeer}, server.WatchPeer()); err != nil {
		cancel()
		b.s.Stop()
		return nil, fmt.Errorf("divert/bgp: watch peers: %w", err)
	}
	for _, n := range cfg.Neighbors {
		b.peers[n.Address] = &peerState{n: n, negotiated: map[gbgp.Family]bool{}}
	}
	return b, nil
}

// Name implements divert.Diverter.
func (b *Backend) Name() string { return "bgp" }

// Start adds the neighbors. localRestarting sets the graceful-restart R bit
// (the speaker came back with routes to refresh).
func (b *Backend) Start(ctx context.Context, localRestarting bool) error {
	b.mu.Lock()
	if b.started {
		b.mu.Unlock()
		return nil
	}
	b.started = true
	neighbors := slices.Clone(b.cfg.Neighbors) // SetNeighbors changes them
	b.mu.Unlock()
	var errs []error
	for _, n := range neighbors {
		if err := b.s.AddPeer(ctx, &api.AddPeerRequest{Peer: b.peerConfig(n, localRestarting)}); err != nil {
			errs = append(errs, fmt.Errorf("divert/bgp: add neighbor %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (b *Backend) peerConfig(n Neighbor, localRestarting bool) *api.Peer {
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: n.Address, PeerAsn: n.PeerAS, AuthPassword: n.Password},
		Transport: &api.Transport{LocalAddress: n.LocalAddress, RemotePort: n.Port},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 5, HoldTime: 30, KeepaliveInterval: 10}},
	}
	for _, f := range n.Families {
		fam := familyByName[f]
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiutil.ToApiFamily(fam.Afi(), fam.Safi()), Enabled: true}}
		if b.cfg.GracefulRestart.Enabled {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		p.AfiSafis = append(p.AfiSafis, af)
	}
	if b.cfg.GracefulRestart.Enabled {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: b.cfg.GracefulRestart.RestartTime, LocalRestarting: localRestarting}
	}
	return p
}

var familyByName = map[string]gbgp.Family{
	"ipv4-unicast": gbgp.RF_IPv4_UC, "ipv6-unicast": gbgp.RF_IPv6_UC,
	"ipv4-flowspec": gbgp.RF_FS_IPv4_UC, "ipv6-flowspec": gbgp.RF_FS_IPv6_UC,
}

func familyName(f gbgp.Family) string {
	for n, fam := range familyByName {
		if fam == f {
			return n
		}
	}
	return f.String()
}

// Close stops the speaker. With graceful restart (and without
// withdraw-on-shutdown) it only closes the connections of the neighbors
// that negotiated graceful restart, with no NOTIFICATION: they keep our
// routes as stale for the restart time (RFC 4724 §4.2), until the next
// start refreshes them. Otherwise, and for the other neighbors, it ends
// the sessions with a Cease, and routers drop our routes at once.
func (b *Backend) Close() error {
	b.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keep := b.cfg.GracefulRestart.Enabled && !b.cfg.GracefulRestart.WithdrawOnShutdown
	// StopBgp ends the sessions and the server's loop. BgpServer.Stop then
	// stops the BFD server's goroutine; it first calls StopBgp again,
	// which fails as the server is no longer running (so sends nothing),
	// and logs that as an error, hence GoBGP's log is muted for it.
	err := b.s.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: keep})
	b.gobgpLV.Set(slog.LevelError + 4)
	b.s.Stop()
	if err != nil {
		return fmt.Errorf("divert/bgp: stop speaker: %w", err)
	}
	if keep {
		b.log.Info("bgp sessions closed for graceful restart: neighbors that negotiated it keep the routes as stale until dotsd is back",
			"diverter", "bgp", "restart_time_s", b.cfg.GracefulRestart.RestartTime)
	} else {
		b.log.Info("bgp sessions ended with a Cease: routers withdraw the routes", "diverter", "bgp")
	}
	return nil
}

func isFlowSpec(f gbgp.Family) bool { return f == gbgp.RF_FS_IPv4_UC || f == gbgp.RF_FS_IPv6_UC }

func (n Neighbor) receives(kind string) bool {
	for _, r := range n.Receives {
		if r == kind {
			return true
		}
	}
	return false
}

func (n Neighbor) hasFamily(f gbgp.Family) bool {
	for _, name := range n.Families {
		if familyByName[name] == f {
			return true
		}
	}
	return false
}
