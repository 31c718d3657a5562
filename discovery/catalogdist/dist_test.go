package catalogdist

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/discovery/catalog"
)

// clock is a manual clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time            { return c.t }
func (c *clock) step(d time.Duration)      { c.t = c.t.Add(d) }
func noJitter(time.Duration) time.Duration { return 0 }

// services returns n realistic services (some with container addresses, tags, weights).
func services(n int) []catalog.ServiceHealth {
	out := make([]catalog.ServiceHealth, n)
	for i := range n {
		s := catalog.Service{Name: fmt.Sprintf("svc-%04d-%s", i, []string{"api", "web", "db", "cache"}[i%4]), Port: uint16(8000 + i)}
		if i%3 == 0 {
			s.Address = netip.AddrFrom4([4]byte{10, 42, 7, byte(2 + i%250)})
		}
		if i%5 == 0 {
			s.Tags = []string{"v2", "blue"}
		}
		out[i] = catalog.ServiceHealth{Service: s, Health: catalog.Health(i % 3)}
	}
	return out
}

func encodeV1(t testing.TB, shs []catalog.ServiceHealth) string {
	t.Helper()
	v, err := catalog.EncodeCatalog(shs)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// receiver is a Dist that records what it applies and what it sends.
type receiver struct {
	*Dist
	applied map[string][]catalog.ServiceHealth
	tags    map[string]string
	sent    []sentEvent
}

type sentEvent struct {
	name    string
	payload []byte
}

func newReceiver(clk *clock, deps Deps) *receiver {
	r := &receiver{applied: map[string][]catalog.ServiceHealth{}, tags: map[string]string{}}
	deps.Now, deps.Jitter = clk.now, noJitter
	deps.Apply = func(node, tag string, s []catalog.ServiceHealth) { r.applied[node], r.tags[node] = s, tag }
	deps.UserEvent = func(name string, p []byte) error {
		r.sent = append(r.sent, sentEvent{name, bytes.Clone(p)})
		return nil
	}
	r.Dist = New(deps)
	return r
}

func (r *receiver) takeSent() []sentEvent {
	s := r.sent
	r.sent = nil
	return s
}

func TestEncode_RoundTrip(t *testing.T) {
	for _, n := range []int{1, 20, 100, 1000} {
		shs := services(n)
		v := encodeV1(t, shs)
		e, err := Encode(v)
		if err != nil {
			t.Fatalf("%d services: %v", n, err)
		}
		a, err := ParseTag(e.Tag())
		if err != nil || a != e.Announce {
			t.Fatalf("ParseTag(%q) = %+v, %v; want %+v", e.Tag(), a, err, e.Announce)
		}
		if a.Services != n || a.Bytes != len(v) {
			t.Fatalf("announce %+v for %d services of %d bytes", a, n, len(v))
		}
		for _, p := range e.Events {
			if len(EventName)+len(p) > 480 {
				t.Fatalf("event of %d bytes", len(p))
			}
		}
		clk := &clock{t: time.Unix(1e9, 0)}
		r := newReceiver(clk, Deps{})
		r.Want("h1", e.Tag())
		// Any order: chunks first, then the manifest.
		for _, p := range slices.Backward(e.Events) {
			r.UserEvent(EventName, p)
		}
		if !equalServices(r.applied["h1"], shs) || r.tags["h1"] != e.Tag() {
			t.Fatalf("%d services: applied %d (tag %q)", n, len(r.applied["h1"]), r.tags["h1"])
		}
		t.Logf("%d services: %d bytes encoded, %d events (tag %d bytes: %s)", n, len(v), len(e.Events), len(e.Tag()), e.Tag())
	}
}

func equalServices(a, b []catalog.ServiceHealth) bool {
	if len(a) != len(b) {
		return false
	}
	sorted := slices.Clone(b)
	slices.SortFunc(sorted, func(x, y catalog.ServiceHealth) int { return strings.Compare(x.Service.Name, y.Service.Name) })
	for i := range a {
		x, y := a[i], sorted[i]
		if x.Service.Name != y.Service.Name || x.Service.Port != y.Service.Port || x.Health != y.Health ||
			x.Service.Address != y.Service.Address || !slices.Equal(x.Service.Tags, y.Service.Tags) {
			return false
		}
	}
	return true
}

func TestEncode_TooLarge(t *testing.T) {
	// Random names do not deflate: past MaxChunks chunks the catalog cannot be carried.
	rng := rand.New(rand.NewPCG(1, 2))
	shs := make([]catalog.ServiceHealth, 3000)
	for i := range shs {
		b := make([]byte, 20)
		for j := range b {
			b[j] = "abcdefghijklmnopqrstuvwxyz0123456789"[rng.IntN(36)]
		}
		shs[i].Service = catalog.Service{Name: string(b), Port: uint16(1 + rng.IntN(65000))}
	}
	if _, err := Encode(encodeV1(t, shs)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Encode of %d random services = %v, want ErrTooLarge", len(shs), err)
	}
}

func TestParseTag_Refuses(t *testing.T) {
	e, _ := Encode(encodeV1(t, services(3)))
	good := e.Tag()
	for _, v := range []string{
		"", "1;a:1", "2;", "2;" + e.Digest.String(), "2;" + e.Digest.String() + ";10",
		"2;" + e.Digest.String() + "=;10;1", "2;AAAA;10;1", "2;" + e.Digest.String() + ";010;1",
		"2;" + e.Digest.String() + ";0;1", "2;" + e.Digest.String() + ";10;0", "2;" + e.Digest.String() + ";-1;1",
		"2;" + e.Digest.String() + ";1000000000;1", good + ";", good + "x",
	} {
		if _, err := ParseTag(v); err == nil {
			t.Errorf("ParseTag(%q) accepted", v)
		}
	}
	if _, err := ParseTag(good); err != nil {
		t.Fatal(err)
	}
}

// A forged chunk under the real digest, arriving before the real one, is dropped on its
// own (the manifest names every chunk's hash); the real chunk still fits and the catalog
// applies. A forged manifest never takes the real one's place.
func TestDist_ForgedChunksDoNotSpoil(t *testing.T) {
	shs := services(100)
	e, _ := Encode(encodeV1(t, shs))
	clk := &clock{t: time.Unix(1e9, 0)}
	r := newReceiver(clk, Deps{})
	r.Want("h1", e.Tag())
	forge := func(p []byte) []byte {
		f := bytes.Clone(p)
		f[len(f)-1] ^= 0xff
		return f
	}
	// Before the manifest: forged chunks wait beside the real ones.
	for _, p := range e.Events[1:] {
		r.UserEvent(EventName, forge(p))
	}
	r.UserEvent(EventName, forge(e.Events[0])) // a forged manifest
	r.UserEvent(EventName, e.Events[0])
	// After the manifest: a forged chunk is checked on arrival.
	r.UserEvent(EventName, forge(e.Events[1]))
	for _, p := range e.Events[1:] {
		r.UserEvent(EventName, p)
	}
	if !equalServices(r.applied["h1"], shs) {
		t.Fatalf("applied %d services, want 100", len(r.applied["h1"]))
	}
	st := r.Stats()
	if st.Dropped["bad_manifest"] != 1 || st.Dropped["bad_chunk"] != uint64(len(e.Events)) {
		t.Fatalf("dropped %v, want 1 bad_manifest and %d bad_chunk", st.Dropped, len(e.Events))
	}
}

// The limits: a tag past them is refused before anything is stored (counted once per
// announcement), and a catalog whose content disagrees with its tag is refused when it
// assembles and not asked for again.
func TestDist_Limits(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	r := newReceiver(clk, Deps{MaxServices: 200, MaxBytes: 1024})
	big, _ := Encode(encodeV1(t, services(100)))
	for range 3 {
		r.Want("evil", big.Tag())
	}
	huge := Announce{Digest: Digest{1}, Bytes: 1000, Services: 100_000}
	r.Want("evil2", huge.Tag())
	for _, p := range big.Events {
		r.UserEvent(EventName, p)
	}
	st := r.Stats()
	if st.Dropped["too_large"] != 1 || st.Dropped["too_many_services"] != 1 || len(r.applied) != 0 || st.Pending != 0 {
		t.Fatalf("over the limits: dropped %v, applied %d, pending %d", st.Dropped, len(r.applied), st.Pending)
	}

	// A catalog of 100,000 services claiming to be 10: a manifest that says so is refused;
	// one that agrees with the tag but inflates to more is cut off at the announced length.
	r2 := newReceiver(clk, Deps{})
	var b strings.Builder
	b.WriteString("1")
	for i := range 100_000 {
		fmt.Fprintf(&b, ";s%06d:1", i)
	}
	bomb, err := encodeUnchecked(b.String())
	if err != nil {
		t.Fatal(err)
	}
	lie := bomb.Announce
	lie.Bytes, lie.Services = 2000, 10
	r2.Want("evil", lie.Tag())
	for _, p := range bomb.Events {
		r2.UserEvent(EventName, p)
	}
	if st := r2.Stats(); st.Dropped["bad_manifest"] != 1 || len(r2.applied) != 0 {
		t.Fatalf("lying tag: dropped %v, applied %d", st.Dropped, len(r2.applied))
	}

	// The tag and manifest agree on 10 services and 200 bytes; the chunks inflate to 1 MB.
	lying, err := encodeLying(b.String(), 200, 10)
	if err != nil {
		t.Fatal(err)
	}
	r3 := newReceiver(clk, Deps{})
	r3.Want("evil", lying.Tag())
	for _, p := range lying.Events {
		r3.UserEvent(EventName, p)
	}
	clk.step(10 * time.Second)
	r3.Tick()
	st = r3.Stats()
	if st.Dropped["bad_length"] != 1 || len(r3.applied) != 0 || st.Pending != 0 {
		t.Fatalf("inflating catalog: dropped %v, applied %d, pending %d", st.Dropped, len(r3.applied), st.Pending)
	}
	for _, s := range r3.takeSent() {
		if s.name == RequestName {
			t.Fatal("a refused catalog is asked for again")
		}
	}
}

// encodeUnchecked is Encode without the MaxChunks bound, as a hostile member could write it.
func encodeUnchecked(v string) (*Encoded, error) {
	return EncodeAs(v, len(v), strings.Count(v, ";")), nil
}

// encodeLying writes v's chunks under a manifest claiming bytes and services.
func encodeLying(v string, bytesClaim, servicesClaim int) (*Encoded, error) {
	return EncodeAs(v, bytesClaim, servicesClaim), nil
}

func TestDist_EarlyEventsAndRequests(t *testing.T) {
	shs := services(100)
	e, _ := Encode(encodeV1(t, shs))
	clk := &clock{t: time.Unix(1e9, 0)}
	owner := newReceiver(clk, Deps{})
	owner.Publish(e)
	owner.Tick()
	if len(owner.takeSent()) != 0 {
		t.Fatal("sent before the debounce")
	}
	clk.step(publishDebounce)
	owner.Tick()
	first := owner.takeSent()
	if len(first) != len(e.Events) {
		t.Fatalf("owner sent %d events, want %d", len(first), len(e.Events))
	}

	// Events that overtake the tag are kept and used when it arrives.
	early := newReceiver(clk, Deps{})
	for _, s := range first {
		early.UserEvent(s.name, s.payload)
	}
	early.Want("owner", e.Tag())
	if !equalServices(early.applied["owner"], shs) {
		t.Fatal("events that came before the tag were not used")
	}

	// A joiner, which missed the broadcast, asks after askAfter; so does a second one, and
	// the owner sends once for both, at most once per resendGap.
	j1, j2 := newReceiver(clk, Deps{}), newReceiver(clk, Deps{})
	j1.Want("owner", e.Tag())
	j2.Want("owner", e.Tag())
	clk.step(askAfter)
	j1.Tick()
	asks := j1.takeSent()
	if len(asks) != 1 || asks[0].name != RequestName || !bytes.Equal(asks[0].payload, e.Digest[:]) {
		t.Fatalf("joiner sent %v, want one request for the digest", asks)
	}
	j2.UserEvent(RequestName, asks[0].payload) // j2 sees j1's request: it need not ask
	j2.Tick()
	if s := j2.takeSent(); len(s) != 0 {
		t.Fatalf("second joiner asked although the first did: %v", s)
	}
	for range 5 {
		owner.UserEvent(RequestName, asks[0].payload) // also a flood of requests
	}
	owner.Tick()
	resend := owner.takeSent()
	if len(resend) != len(e.Events) {
		t.Fatalf("owner re-sent %d events, want %d", len(resend), len(e.Events))
	}
	owner.UserEvent(RequestName, asks[0].payload)
	owner.Tick()
	if s := owner.takeSent(); len(s) != 0 {
		t.Fatal("owner re-sent twice within resendGap")
	}
	clk.step(resendGap)
	owner.Tick()
	if s := owner.takeSent(); len(s) != len(e.Events) {
		t.Fatalf("request within the gap not answered after it: %d events", len(s))
	}
	for _, s := range resend {
		j1.UserEvent(s.name, s.payload)
		j2.UserEvent(s.name, s.payload)
	}
	if !equalServices(j1.applied["owner"], shs) || !equalServices(j2.applied["owner"], shs) {
		t.Fatal("joiners did not apply the re-sent catalog")
	}
	// Events for catalogs already held are not kept as early ones.
	for _, s := range resend {
		j1.UserEvent(s.name, s.payload)
	}
	if len(j1.early) != 0 || j1.Stats().Pending != 0 {
		t.Fatalf("held catalog's events kept: %d early", len(j1.early))
	}
}

// Requests back off while a catalog stays missing, and stop when its owner leaves.
func TestDist_RequestBackoff(t *testing.T) {
	e, _ := Encode(encodeV1(t, services(30)))
	clk := &clock{t: time.Unix(1e9, 0)}
	r := newReceiver(clk, Deps{})
	r.Want("h1", e.Tag())
	var at []time.Duration
	start := clk.t
	for clk.t.Sub(start) < 2*time.Minute {
		clk.step(TickInterval)
		r.Tick()
		if len(r.takeSent()) > 0 {
			at = append(at, clk.t.Sub(start))
		}
	}
	if len(at) < 4 || len(at) > 10 {
		t.Fatalf("requests at %v: want a few, backing off", at)
	}
	for i := 2; i < len(at); i++ {
		if gap := at[i] - at[i-1]; gap < at[i-1]-at[i-2] || gap > maxAskGap+TickInterval {
			t.Fatalf("requests at %v: gaps do not back off to %v", at, maxAskGap)
		}
	}
	r.Forget("h1")
	clk.step(time.Minute)
	r.Tick()
	if len(r.takeSent()) != 0 || r.Stats().Pending != 0 {
		t.Fatal("asked for the catalog of a member that left")
	}
}

// Bounds on what unannounced and pre-manifest events may hold.
func TestDist_FloodBounded(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	r := newReceiver(clk, Deps{})
	p := make([]byte, chunkHeader+ChunkData)
	p[0] = kindChunk
	for i := range 10_000 {
		p[1], p[2] = byte(i), byte(i>>8)
		r.UserEvent(EventName, p)
	}
	if len(r.early) != earlyMax || r.Stats().Dropped["unannounced"] != 10_000-earlyMax {
		t.Fatalf("early %d, dropped %v", len(r.early), r.Stats().Dropped)
	}
	e, _ := Encode(encodeV1(t, services(100)))
	r.Want("h1", e.Tag())
	copy(p[1:], e.Digest[:])
	for i := range 10_000 {
		p[chunkHeader] = byte(i)
		r.UserEvent(EventName, p)
	}
	r.mu.Lock()
	n := len(r.wants[e.Digest].pending)
	r.mu.Unlock()
	if n != 2*MaxChunks || r.Stats().Dropped["pending_full"] == 0 {
		t.Fatalf("pending %d, dropped %v", n, r.Stats().Dropped)
	}
	// Still, the real catalog applies once its manifest and chunks come.
	for _, q := range e.Events {
		r.UserEvent(EventName, q)
	}
	if len(r.applied["h1"]) != 100 {
		t.Fatalf("real catalog after a flood: %d services", len(r.applied["h1"]))
	}
}

// A member's new tag replaces what was wanted of the old one; its old catalog stays with
// the caller (Apply is not called) until the new one is complete.
func TestDist_TagChanges(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	r := newReceiver(clk, Deps{})
	a, _ := Encode(encodeV1(t, services(40)))
	b, _ := Encode(encodeV1(t, services(41)))
	r.Want("h1", a.Tag())
	for _, p := range a.Events[:len(a.Events)-1] {
		r.UserEvent(EventName, p)
	}
	r.Want("h1", b.Tag())
	r.UserEvent(EventName, a.Events[len(a.Events)-1])
	if len(r.applied) != 0 {
		t.Fatal("the catalog of a replaced tag was applied")
	}
	for _, p := range b.Events {
		r.UserEvent(EventName, p)
	}
	if len(r.applied["h1"]) != 41 || r.tags["h1"] != b.Tag() {
		t.Fatalf("applied %d services under %q", len(r.applied["h1"]), r.tags["h1"])
	}
	// The same tag again (another tag of the member changed): nothing to do.
	r.Want("h1", b.Tag())
	if st := r.Stats(); st.Pending != 0 || st.Applied != 1 {
		t.Fatalf("re-announced tag: %+v", st)
	}
}

// BenchmarkDist_Receive is what one member spends on one catalog of 100 and of 1,000
// services: the tag, every event checked, inflating and decoding (Apply does nothing). A
// member joining 1,000 hosts of 100 services each spends 1,000 of these.
func BenchmarkDist_Receive(b *testing.B) {
	for _, n := range []int{100, 1000} {
		e, err := Encode(encodeV1(b, services(n)))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			clk := &clock{t: time.Unix(1e9, 0)}
			r := newReceiver(clk, Deps{})
			b.ReportAllocs()
			for i := range b.N {
				node := strconv.Itoa(i)
				r.Want(node, e.Tag())
				for _, p := range e.Events {
					r.UserEvent(EventName, p)
				}
				if r.tags[node] == "" {
					b.Fatal("not applied")
				}
				r.Forget(node)
			}
		})
	}
}

// BenchmarkDist_HeapPerMember is the heap a catalog of 100 services holds per member once
// installed in a real catalog (1,000 members, each catalog received and decoded on its own).
func BenchmarkDist_HeapPerMember(b *testing.B) {
	const members, n = 1000, 100
	e, err := Encode(encodeV1(b, services(n)))
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		cat, err := catalog.NewCatalog(catalog.CatalogConfig{Node: "self", SubnetBits: 16})
		if err != nil {
			b.Fatal(err)
		}
		d := New(Deps{Apply: func(node, tag string, s []catalog.ServiceHealth) { _, _ = cat.ApplyNode(node, tag, s) }})
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range members {
			node := fmt.Sprintf("h%04d", i)
			cat.Announce(node, netip.AddrFrom4([4]byte{10, 42, 7, 1}), e.Tag())
			d.Want(node, e.Tag())
			for _, p := range e.Events {
				d.UserEvent(EventName, p)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := len(cat.All()); got != members*n {
			b.Fatalf("%d instances", got)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/members/1024, "KiB/member")
		cat.Close()
	}
}
