package catalogdist

import (
	"testing"
	"time"
)

// FuzzDist_UserEvent: any event or request, from anyone, never panics, never applies a
// catalog other than the one the owner's tag names, and stays within the bounds. The
// fuzzer's event comes first, then the real manifest (the chunk is the fuzzer's to find).
func FuzzDist_UserEvent(f *testing.F) {
	shs := services(3)
	e, err := Encode(encodeV1(f, shs))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range e.Events {
		f.Add(p, false)
	}
	f.Add(e.Digest[:], true)
	f.Add([]byte{kindChunk}, false)
	f.Add(make([]byte, chunkHeader+1), false)
	f.Fuzz(func(t *testing.T, p []byte, request bool) {
		clk := &clock{t: time.Unix(1e9, 0)}
		r := newReceiver(clk, Deps{MaxServices: 10, MaxBytes: 2048})
		r.Publish(e)
		r.Want("h1", e.Tag())
		name := EventName
		if request {
			name = RequestName
		}
		for range 3 {
			r.UserEvent(name, p)
		}
		r.UserEvent(EventName, e.Events[0])
		clk.step(time.Minute)
		r.Tick()
		if got, ok := r.applied["h1"]; ok && !equalServices(got, shs) {
			t.Fatalf("applied %+v", got)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.early) > earlyMax {
			t.Fatalf("%d early events", len(r.early))
		}
		for _, w := range r.wants {
			if len(w.pending) > 2*MaxChunks {
				t.Fatalf("%d pending chunks", len(w.pending))
			}
		}
	})
}
