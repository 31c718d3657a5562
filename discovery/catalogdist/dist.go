package catalogdist

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/weftnet/weft/discovery/catalog"
)

// Sending, assembling and catching up.
//
// The owner: Publish hands over the catalog to carry (nil: it fits the tag again). Its
// events are broadcast publishDebounce after the last change, so registering 100 services
// one by one costs one broadcast. A request naming its digest has it broadcast again, at
// most once per resendGap whoever asks and however often.
//
// A receiver: Want is called with a member's digest tag (its join or update event, from a
// member the trust layer accepts). The member's previous services stay answered until the
// new catalog assembles and checks out; then Deps.Apply installs it. Each event is checked
// as it arrives (codec.go): a forged chunk is dropped and the real one still fits. If the
// catalog is not complete askAfter (plus jitter) after the tag arrived, or since the last
// piece of it arrived, the receiver sends a request naming it, then backs off (doubling up
// to maxAskGap) while it stays incomplete. Seeing another member ask for the same digest
// counts as asking: the owner answers everybody at once.
//
// Bounds, against a member that holds the gossip key and announces or sends whatever it
// likes: a tag beyond MaxBytes or MaxServices is refused before anything is stored; one
// assembly per member's current tag, holding at most 2 × MaxChunks chunks (before its
// manifest arrives) or the manifest's own chunks; events for digests no tag announces yet
// (they can overtake the tag) share earlyMax events for earlyTTL; a catalog that
// assembles but does not decode, or decodes to other counts than announced, is refused
// and not asked for again until its owner's tag changes. Each refusal is counted by reason
// (Stats.Dropped).

const (
	// DefaultMaxServices and DefaultMaxBytes bound a member's catalog (its services, and the
	// bytes of its version-1 encoding) on both sides: registrations past them are refused,
	// announcements past them ignored.
	DefaultMaxServices = catalog.DefaultMaxServices
	DefaultMaxBytes    = catalog.DefaultMaxBytes

	publishDebounce = 200 * time.Millisecond
	resendGap       = time.Second
	askAfter        = time.Second
	askJitter       = 500 * time.Millisecond
	maxAskGap       = 30 * time.Second
	earlyMax        = 64
	earlyTTL        = 10 * time.Second
	// TickInterval is how often Start's loop looks for work.
	TickInterval = 100 * time.Millisecond
)

// Deps is what a Dist needs.
type Deps struct {
	// UserEvent broadcasts a user event; nil: nothing is sent (no gossip).
	UserEvent func(name string, payload []byte) error
	// Apply installs the verified catalog of node, announced by tag (its services sorted,
	// as catalog.DecodeCatalog returns them). Called without the Dist's lock, from the
	// goroutine that delivered the last event.
	Apply func(node, tag string, services []catalog.ServiceHealth)
	// MaxServices and MaxBytes: 0 means DefaultMaxServices and DefaultMaxBytes.
	MaxServices, MaxBytes int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Jitter returns a duration in [0, n) (nil: random).
	Jitter func(n time.Duration) time.Duration
	// Logger (nil: discarded).
	Logger *slog.Logger
}

// Stats is what a Dist has done.
type Stats struct {
	// Dropped counts refused events and announcements by reason.
	Dropped map[string]uint64
	// Applied counts catalogs assembled and installed.
	Applied uint64
	// Sent counts broadcasts of this host's catalog (each all its events); Requests the
	// requests this host sent.
	Sent, Requests uint64
	// Pending is how many announced catalogs are not assembled yet.
	Pending int
}

// Dist carries catalogs in and out. Safe for concurrent use.
type Dist struct {
	deps Deps
	log  *slog.Logger

	mu       sync.Mutex
	own      *Encoded
	sendAt   time.Time // zero: no broadcast due
	lastSent time.Time
	wants    map[Digest]*want
	nodes    map[string]Digest // a member → the digest it announces that is not applied yet
	applied  map[string]Digest // a member → the digest applied for it
	held     map[Digest]int    // how many members each applied digest is applied for
	refused  map[string]string // a member → its tag refused (counted once)
	early    []earlyEvent
	stats    Stats

	quit chan struct{}
	done chan struct{}
}

type want struct {
	ann     Announce
	tag     string
	nodes   map[string]bool
	man     *manifest
	parts   [][]byte
	have    int
	pending [][]byte // chunks that came before the manifest
	failed  bool     // assembled and refused: not asked for again
	nextAsk time.Time
	gap     time.Duration
}

type earlyEvent struct {
	at      time.Time
	digest  Digest
	payload []byte
}

// New returns a Dist holding nothing; Start runs its timers.
func New(deps Deps) *Dist {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Jitter == nil {
		deps.Jitter = func(n time.Duration) time.Duration {
			if n <= 0 {
				return 0
			}
			return rand.N(n)
		}
	}
	if deps.Apply == nil {
		deps.Apply = func(string, string, []catalog.ServiceHealth) {}
	}
	if deps.MaxServices <= 0 {
		deps.MaxServices = DefaultMaxServices
	}
	if deps.MaxBytes <= 0 {
		deps.MaxBytes = DefaultMaxBytes
	}
	deps.MaxBytes = min(deps.MaxBytes, HardMaxBytes)
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dist{deps: deps, log: log, wants: map[Digest]*want{}, nodes: map[string]Digest{},
		applied: map[string]Digest{}, held: map[Digest]int{}, refused: map[string]string{}, stats: Stats{Dropped: map[string]uint64{}}}
}

// Start runs the loop that sends what is due; Close stops it.
func (d *Dist) Start() {
	d.quit, d.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.done)
		t := time.NewTicker(TickInterval)
		defer t.Stop()
		for {
			select {
			case <-d.quit:
				return
			case <-t.C:
				d.Tick()
			}
		}
	}()
}

// Close stops Start's loop.
func (d *Dist) Close() {
	if d.quit != nil {
		close(d.quit)
		<-d.done
		d.quit = nil
	}
}

// Stats returns a copy of the counters.
func (d *Dist) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Dropped = make(map[string]uint64, len(d.stats.Dropped))
	for k, v := range d.stats.Dropped {
		s.Dropped[k] = v
	}
	s.Pending = 0
	for _, w := range d.wants {
		if !w.failed {
			s.Pending++
		}
	}
	return s
}

// Limits are the bounds in force.
func (d *Dist) Limits() (maxServices, maxBytes int) { return d.deps.MaxServices, d.deps.MaxBytes }

func (d *Dist) dropLocked(reason string) { d.stats.Dropped[reason]++ }

// Publish sets this host's catalog to carry (nil: none, it fits the tag); its events go
// out publishDebounce after the last call.
func (d *Dist) Publish(e *Encoded) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.own = e
	d.sendAt = time.Time{}
	if e != nil {
		d.sendAt = d.deps.Now().Add(publishDebounce)
	}
}

// Want notes a member's digest tag; its catalog is assembled from the events that carry
// it (asked for when they do not come) and applied. A tag beyond the limits is refused and
// counted once.
func (d *Dist) Want(node, tag string) {
	d.mu.Lock()
	apply := d.wantLocked(node, tag)
	d.mu.Unlock()
	apply()
}

func (d *Dist) wantLocked(node, tag string) (apply func()) {
	a, err := ParseTag(tag)
	reason := ""
	switch {
	case err != nil:
		reason = "bad_tag"
	case a.Bytes > d.deps.MaxBytes:
		reason, err = "too_large", fmt.Errorf("%d bytes, more than %d", a.Bytes, d.deps.MaxBytes)
	case a.Services > d.deps.MaxServices:
		reason, err = "too_many_services", fmt.Errorf("%d services, more than %d", a.Services, d.deps.MaxServices)
	}
	if reason != "" {
		d.forgetLocked(node)
		if d.refused[node] != tag {
			d.refused[node] = tag
			d.dropLocked(reason)
			d.log.Warn("member's catalog refused", "member", node, "reason", reason, "err", err)
		}
		return nop
	}
	delete(d.refused, node)
	if d.applied[node] == a.Digest {
		d.forgetLocked(node)
		return nop
	}
	if old, ok := d.nodes[node]; ok && old != a.Digest {
		d.forgetLocked(node)
	}
	now := d.deps.Now()
	w := d.wants[a.Digest]
	if w == nil {
		w = &want{ann: a, tag: tag, nodes: map[string]bool{}, nextAsk: now.Add(askAfter + d.deps.Jitter(askJitter)), gap: askAfter}
		d.wants[a.Digest] = w
	}
	w.nodes[node] = true
	d.nodes[node] = a.Digest
	// Events that overtook the tag.
	var replay [][]byte
	kept := d.early[:0]
	for _, e := range d.early {
		if e.digest == a.Digest {
			replay = append(replay, e.payload)
		} else {
			kept = append(kept, e)
		}
	}
	d.early = kept
	for _, p := range replay {
		d.chunkLocked(w, p, now)
	}
	return d.completeLocked(w)
}

func nop() {}

// Forget drops what is held for a member (it left, failed, or announces its catalog in
// the tag again).
func (d *Dist) Forget(node string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgetLocked(node)
	d.setAppliedLocked(node, nil)
	delete(d.refused, node)
}

// setAppliedLocked records the digest applied for node (nil: none).
func (d *Dist) setAppliedLocked(node string, dg *Digest) {
	if old, ok := d.applied[node]; ok {
		if d.held[old]--; d.held[old] <= 0 {
			delete(d.held, old)
		}
		delete(d.applied, node)
	}
	if dg != nil {
		d.applied[node] = *dg
		d.held[*dg]++
	}
}

func (d *Dist) forgetLocked(node string) {
	dg, ok := d.nodes[node]
	if !ok {
		return
	}
	delete(d.nodes, node)
	if w := d.wants[dg]; w != nil {
		delete(w.nodes, node)
		if len(w.nodes) == 0 {
			delete(d.wants, dg)
		}
	}
}

// UserEvent takes an event of EventName or RequestName (others are ignored).
func (d *Dist) UserEvent(name string, p []byte) {
	switch name {
	case EventName:
		d.event(p)
	case RequestName:
		d.request(p)
	}
}

func (d *Dist) request(p []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(p) == 0 || len(p)%digestLen != 0 {
		d.dropLocked("bad_request")
		return
	}
	now := d.deps.Now()
	for i := 0; i < len(p); i += digestLen {
		var dg Digest
		copy(dg[:], p[i:])
		if d.own != nil && d.own.Digest == dg {
			if d.sendAt.IsZero() {
				d.sendAt = later(now, d.lastSent.Add(resendGap))
			}
			continue
		}
		// Another member lags on a catalog this one waits for too: the owner answers both.
		if w := d.wants[dg]; w != nil && !w.failed {
			w.nextAsk = later(w.nextAsk, now.Add(w.gap+d.deps.Jitter(askJitter)))
		}
	}
}

func (d *Dist) event(p []byte) {
	d.mu.Lock()
	apply := d.eventLocked(p)
	d.mu.Unlock()
	apply()
}

func (d *Dist) eventLocked(p []byte) (apply func()) {
	if len(p) < manifestHeader+1 || (p[0] != kindManifest && p[0] != kindChunk) {
		d.dropLocked("bad_event")
		return nop
	}
	var dg Digest
	copy(dg[:], p[1:])
	now := d.deps.Now()
	w := d.wants[dg]
	if w == nil {
		if d.own != nil && d.own.Digest == dg || d.isAppliedLocked(dg) {
			return nop // ours, or a re-send to a member that lagged
		}
		// The tag may still be on its way: keep a few such events for a while.
		kept := d.early[:0]
		for _, e := range d.early {
			if now.Sub(e.at) < earlyTTL {
				kept = append(kept, e)
			}
		}
		d.early = kept
		if len(d.early) >= earlyMax {
			d.dropLocked("unannounced")
			return nop
		}
		d.early = append(d.early, earlyEvent{at: now, digest: dg, payload: bytes.Clone(p)})
		return nop
	}
	if w.failed {
		return nop
	}
	if d.chunkLocked(w, p, now) {
		w.nextAsk = later(w.nextAsk, now.Add(askAfter))
	}
	return d.completeLocked(w)
}

func (d *Dist) isAppliedLocked(dg Digest) bool { return d.held[dg] > 0 }

// chunkLocked takes one event for w; it reports whether it was new and valid.
func (d *Dist) chunkLocked(w *want, p []byte, now time.Time) bool {
	if p[0] == kindManifest {
		if w.man != nil {
			return false
		}
		m, err := parseManifest(w.ann.Digest, p[manifestHeader:])
		if err == nil && (m.bytes != w.ann.Bytes || m.services != w.ann.Services) {
			err = fmt.Errorf("manifest says %d bytes and %d services, the tag %d and %d", m.bytes, m.services, w.ann.Bytes, w.ann.Services)
		}
		if err != nil {
			d.dropLocked("bad_manifest")
			d.log.Debug("catalog manifest refused", "digest", w.ann.Digest, "err", err)
			return false
		}
		w.man, w.parts = m, make([][]byte, m.chunks)
		pending := w.pending
		w.pending = nil
		for _, c := range pending {
			d.placeLocked(w, c)
		}
		return true
	}
	if len(p) < chunkHeader+1 {
		d.dropLocked("bad_event")
		return false
	}
	if w.man == nil {
		if len(w.pending) >= 2*MaxChunks {
			d.dropLocked("pending_full")
			return false
		}
		w.pending = append(w.pending, bytes.Clone(p))
		return true
	}
	return d.placeLocked(w, p)
}

// placeLocked puts a chunk in its place if the manifest's hash of that place matches.
func (d *Dist) placeLocked(w *want, p []byte) bool {
	i, data := int(p[chunkHeader-1]), p[chunkHeader:]
	if i >= w.man.chunks {
		d.dropLocked("bad_chunk")
		return false
	}
	if w.parts[i] != nil {
		return false
	}
	h := sha256.Sum256(data)
	if !bytes.Equal(h[:hashLen], w.man.hashes[i*hashLen:(i+1)*hashLen]) {
		d.dropLocked("bad_chunk")
		return false
	}
	w.parts[i] = bytes.Clone(data)
	w.have++
	return true
}

// completeLocked decodes w once every chunk is in and returns what applies it, for the
// caller to run once it released the lock.
func (d *Dist) completeLocked(w *want) (apply func()) {
	if w.man == nil || w.failed || w.have < w.man.chunks {
		return nop
	}
	services, reason, err := d.decodeLocked(w)
	if err != nil {
		w.failed, w.parts, w.pending = true, nil, nil
		d.dropLocked(reason)
		d.log.Warn("member's catalog refused", "members", nodeList(w.nodes), "reason", reason, "err", err)
		return nop
	}
	delete(d.wants, w.ann.Digest)
	nodes := nodeList(w.nodes)
	for _, n := range nodes {
		delete(d.nodes, n)
		d.setAppliedLocked(n, &w.ann.Digest)
	}
	d.stats.Applied++
	tag := w.tag
	return func() {
		for _, n := range nodes {
			d.deps.Apply(n, tag, services)
		}
	}
}

func (d *Dist) decodeLocked(w *want) ([]catalog.ServiceHealth, string, error) {
	data := bytes.Join(w.parts, nil)
	if len(data) != w.man.deflated {
		return nil, "bad_length", fmt.Errorf("%d deflated bytes, the manifest says %d", len(data), w.man.deflated)
	}
	s, err := inflate(data, w.man.bytes)
	if err != nil {
		return nil, "bad_length", err
	}
	services, err := catalog.DecodeCatalog(s)
	if err != nil {
		return nil, "bad_catalog", err
	}
	if len(services) != w.man.services {
		return nil, "bad_catalog", fmt.Errorf("%d services, the tag says %d", len(services), w.man.services)
	}
	return services, "", nil
}

func nodeList(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

// Tick sends what is due: this host's catalog after a change or a request, and requests
// for catalogs that are late. Start's loop calls it every TickInterval.
func (d *Dist) Tick() {
	d.mu.Lock()
	now := d.deps.Now()
	var send [][]byte
	if d.own != nil && !d.sendAt.IsZero() && !now.Before(d.sendAt) {
		send = d.own.Events
		d.sendAt, d.lastSent = time.Time{}, now
		d.stats.Sent++
	}
	var ask []byte
	for dg, w := range d.wants {
		if w.failed || now.Before(w.nextAsk) || len(ask) >= maxRequestDigests*digestLen {
			continue
		}
		ask = append(ask, dg[:]...)
		w.gap = min(2*w.gap, maxAskGap)
		w.nextAsk = now.Add(w.gap + d.deps.Jitter(askJitter))
	}
	if len(ask) > 0 {
		d.stats.Requests++
	}
	d.mu.Unlock()
	if d.deps.UserEvent == nil {
		return
	}
	for _, p := range send {
		if err := d.deps.UserEvent(EventName, p); err != nil {
			d.log.Warn("send catalog", "err", err)
			break
		}
	}
	if len(ask) > 0 {
		if err := d.deps.UserEvent(RequestName, ask); err != nil {
			d.log.Warn("ask for catalogs", "err", err)
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
