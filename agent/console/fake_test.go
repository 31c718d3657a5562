package console

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/weftnet/weft/agent/api"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/policy"
)

// fakeCatalog is a catalog whose instances the test sets; Wait returns on each change.
type fakeCatalog struct {
	mu      sync.Mutex
	idx     uint64
	inst    []catalog.Instance
	local   []catalog.LocalService
	changed chan struct{}
}

var _ Catalog = (*fakeCatalog)(nil)

func newFakeCatalog() *fakeCatalog { return &fakeCatalog{idx: 1, changed: make(chan struct{})} }

func (f *fakeCatalog) set(inst []catalog.Instance, local []catalog.LocalService) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inst, f.local = inst, local
	f.idx++
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeCatalog) All() []catalog.Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]catalog.Instance(nil), f.inst...)
}

func (f *fakeCatalog) Local() []catalog.LocalService {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]catalog.LocalService(nil), f.local...)
}

func (f *fakeCatalog) Index() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.idx
}

func (f *fakeCatalog) Wait(ctx context.Context, index uint64) (uint64, error) {
	for {
		f.mu.Lock()
		cur, ch := f.idx, f.changed
		f.mu.Unlock()
		if cur > index {
			return cur, nil
		}
		select {
		case <-ctx.Done():
			return cur, ctx.Err()
		case <-ch:
		}
	}
}

// fakeAgent is a three-host cluster seen from h1, with counters the test moves.
type fakeAgent struct {
	mu      sync.Mutex
	members []api.Member
	peers   []api.Peer
	pol     api.PolicyStatus
	tested  []string // the ports PolicyTest was asked
	cat     *fakeCatalog
}

func newFakeAgent() *fakeAgent {
	f := &fakeAgent{cat: newFakeCatalog()}
	f.members = []api.Member{
		{Name: "h1", Addr: "192.168.150.1:7946", Status: "alive", Subnet: "10.42.1.0/24"},
		{Name: "h2", Addr: "192.168.150.2:7946", Status: "alive", Subnet: "10.42.2.0/24", Groups: []string{"web"}},
		{Name: "h3", Addr: "192.168.150.3:7946", Status: "failed", Subnet: "10.42.3.0/24"},
		{Name: "evil", Addr: "192.168.150.9:7946", Status: "alive", Refused: "subnet_taken"},
	}
	f.peers = []api.Peer{
		{Name: "h2", PublicKey: "k2", Endpoint: "192.168.150.2:51820", State: "up", RxBytes: 1000, TxBytes: 2000, PathMTU: 1500},
		{Name: "h3", PublicKey: "k3", Endpoint: "192.168.150.3:51820", State: "handshake failing", StateReason: "no answer"},
	}
	f.pol = api.PolicyStatus{Source: "file", Enforced: true, Drops: map[string]uint64{"policy_denied": 3},
		Rules: []policy.RuleStats{{Index: 0, Name: "web", Action: "allow", Rule: "from groups=web", Hits: 5, Drops: 0}, {Index: -1, Action: "deny", Rule: "default", Drops: 3}}}
	f.cat.set([]catalog.Instance{
		{Node: "h1", Addr: netip.MustParseAddr("10.42.1.1"), Service: catalog.Service{Name: "web", Port: 80, Check: &catalog.CheckDef{Kind: catalog.CheckHTTP, Target: "http://10.42.1.1/"}}},
		{Node: "h2", Addr: netip.MustParseAddr("10.42.2.1"), Service: catalog.Service{Name: "web", Port: 80}, Health: catalog.HealthCritical},
	}, []catalog.LocalService{{Service: catalog.Service{Name: "web"}, Output: "HTTP 200 OK"}})
	return f
}

func (f *fakeAgent) source() Source {
	return Source{
		Self: func() string { return "h1" },
		Members: func() []api.Member {
			f.mu.Lock()
			defer f.mu.Unlock()
			return append([]api.Member(nil), f.members...)
		},
		Peers: func() []api.Peer {
			f.mu.Lock()
			defer f.mu.Unlock()
			return append([]api.Peer(nil), f.peers...)
		},
		Catalog: f.cat,
		Policy: func() (api.PolicyStatus, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.pol, nil
		},
		PolicyTest: func(from, to, port string) (api.PolicyTest, error) {
			f.mu.Lock()
			f.tested = append(f.tested, port)
			f.mu.Unlock()
			return api.PolicyTest{From: from, To: to, Port: port, Allowed: port == "80/tcp", Explain: "rule web"}, nil
		},
	}
}

// addBytes moves a peer's counters.
func (f *fakeAgent) addBytes(name string, rx, tx uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.peers {
		if f.peers[i].Name == name {
			f.peers[i].RxBytes += rx
			f.peers[i].TxBytes += tx
		}
	}
}

// testConfig samples fast, so the tests wait for little.
func testConfig() Config {
	return Config{SampleInterval: 20 * time.Millisecond, History: 8, MaxClients: 2}
}
