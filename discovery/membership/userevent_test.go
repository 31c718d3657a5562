package membership

import (
	"bytes"
	"testing"
	"time"
)

func TestCluster_UserEvent(t *testing.T) {
	a := clStartCluster(t, clTestConfig(t, "a"))
	b := clStartCluster(t, clTestConfig(t, "b"))
	if _, err := b.Join([]string{clAddrOf(a)}); err != nil {
		t.Fatal(err)
	}
	clWaitEvent(t, a, EventJoin, "b", 10*time.Second)
	if err := a.UserEvent("x", make([]byte, UserEventLimit)); err == nil {
		t.Fatal("an event over the limit was accepted")
	}
	payload := bytes.Repeat([]byte{7}, UserEventLimit-len("chunk"))
	if err := a.UserEvent("chunk", payload); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-b.Events():
			if ev.Type == EventUser && ev.Name == "chunk" {
				if !bytes.Equal(ev.Payload, payload) {
					t.Fatalf("payload %d bytes differs", len(ev.Payload))
				}
				return
			}
		case <-timeout:
			t.Fatal("b got no user event")
		}
	}
}
