package console

// Throughput per peer: every SampleInterval the sampler reads the peers' byte counters,
// turns the deltas into bits per second, keeps them in a fixed ring per peer (so a host
// page opened now draws the last minutes) and sends the "cluster" event. Peers that are
// gone are dropped with their ring: memory is History samples per current peer.

import (
	"sync"
	"time"

	"github.com/weftnet/weft/agent/api"
)

// Cluster is /api/cluster and the "cluster" event.
type Cluster struct {
	Self    string       `json:"self"`
	Members []api.Member `json:"members"`
	Peers   []Peer       `json:"peers"`
	Time    time.Time    `json:"time"`
}

// Peer is a peer with its throughput over the last sample interval, in bits per second.
type Peer struct {
	api.Peer
	RxBps uint64 `json:"rx_bps"`
	TxBps uint64 `json:"tx_bps"`
}

// History is /api/history: each peer's samples, oldest first, by peer name.
type History struct {
	IntervalMS int64                  `json:"interval_ms"`
	Peers      map[string]PeerSamples `json:"peers"`
}

// PeerSamples are one peer's samples: times (Unix milliseconds) and rates (bit/s).
type PeerSamples struct {
	T  []int64  `json:"t"`
	Rx []uint64 `json:"rx"`
	Tx []uint64 `json:"tx"`
}

// ring is one peer's last samples; next is where the next one goes.
type ring struct {
	name     string
	t        []int64
	rx, tx   []uint64
	n, next  int
	at       time.Time // of the counters below
	rxB, txB uint64
}

func (r *ring) push(t time.Time, rx, tx uint64) {
	r.t[r.next], r.rx[r.next], r.tx[r.next] = t.UnixMilli(), rx, tx
	r.next = (r.next + 1) % len(r.t)
	if r.n < len(r.t) {
		r.n++
	}
}

func (r *ring) samples() PeerSamples {
	out := PeerSamples{T: make([]int64, 0, r.n), Rx: make([]uint64, 0, r.n), Tx: make([]uint64, 0, r.n)}
	for i := range r.n {
		j := (r.next - r.n + i + len(r.t)) % len(r.t)
		out.T, out.Rx, out.Tx = append(out.T, r.t[j]), append(out.Rx, r.rx[j]), append(out.Tx, r.tx[j])
	}
	return out
}

// sampler owns the rings and the latest snapshot.
type sampler struct {
	size int

	mu    sync.Mutex
	rings map[string]*ring // by public key
	snap  Cluster
}

func newSampler(size int) *sampler { return &sampler{size: size, rings: map[string]*ring{}} }

// rate is the bits per second between two counter readings; 0 when the counter went back
// (the peer was re-added) or no time passed.
func rate(old, cur uint64, dt time.Duration) uint64 {
	if cur < old || dt <= 0 {
		return 0
	}
	return uint64(float64(cur-old) * 8 / dt.Seconds())
}

// add takes one reading of every peer at now and makes it the latest snapshot.
func (s *sampler) add(now time.Time, self string, members []api.Member, peers []api.Peer) Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[string]bool, len(peers))
	c := Cluster{Self: self, Members: members, Peers: make([]Peer, 0, len(peers)), Time: now.UTC()}
	if c.Members == nil {
		c.Members = []api.Member{}
	}
	for _, p := range peers {
		seen[p.PublicKey] = true
		r := s.rings[p.PublicKey]
		pr := Peer{Peer: p}
		if r == nil {
			r = &ring{t: make([]int64, s.size), rx: make([]uint64, s.size), tx: make([]uint64, s.size)}
			s.rings[p.PublicKey] = r
		} else {
			dt := now.Sub(r.at)
			pr.RxBps, pr.TxBps = rate(r.rxB, p.RxBytes, dt), rate(r.txB, p.TxBytes, dt)
			r.push(now, pr.RxBps, pr.TxBps)
		}
		r.name = peerName(p)
		r.at, r.rxB, r.txB = now, p.RxBytes, p.TxBytes
		c.Peers = append(c.Peers, pr)
	}
	for k := range s.rings {
		if !seen[k] {
			delete(s.rings, k)
		}
	}
	s.snap = c
	return c
}

func (s *sampler) latest() Cluster {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

func (s *sampler) history(interval time.Duration) History {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := History{IntervalMS: interval.Milliseconds(), Peers: make(map[string]PeerSamples, len(s.rings))}
	for _, r := range s.rings {
		h.Peers[r.name] = r.samples()
	}
	return h
}

// peerName is how the page names a peer: its member name, else its public key (a static
// peer or a WireGuard client without one).
func peerName(p api.Peer) string {
	if p.Name != "" {
		return p.Name
	}
	return p.PublicKey
}

// sample reads the source once and sends the "cluster" event.
func (s *Server) sample(now time.Time) {
	var self string
	var members []api.Member
	var peers []api.Peer
	if s.src.Self != nil {
		self = s.src.Self()
	}
	if s.src.Members != nil {
		members = s.src.Members()
	}
	if s.src.Peers != nil {
		peers = s.src.Peers()
	}
	c := s.samp.add(now, self, members, peers)
	if s.hub.count() > 0 {
		s.hub.publish("cluster", c)
	}
}

// sampleLoop samples every interval, and sends "policy" when its counters changed while
// somebody watches.
func (s *Server) sampleLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SampleInterval)
	defer t.Stop()
	var lastPolicy []byte
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.sample(now)
			if s.hub.count() == 0 {
				lastPolicy = nil
				continue
			}
			if p, err := s.policy(); err == nil {
				if b := mustJSON(p); string(b) != string(lastPolicy) {
					lastPolicy = b
					s.hub.publishRaw("policy", b)
				}
			}
		}
	}
}
