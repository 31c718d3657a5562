package catalog

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestCatalog_Wait(t *testing.T) {
	c, _ := newTestCatalog(t, CatalogConfig{})
	idx := c.Index()
	if idx != 1 {
		t.Fatalf("initial index %d", idx)
	}
	if got, err := c.Wait(context.Background(), 0); err != nil || got != idx {
		t.Fatalf("Wait(0) = %d, %v", got, err)
	}

	done := make(chan uint64)
	go func() {
		got, err := c.Wait(context.Background(), idx)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	select {
	case <-done:
		t.Fatal("Wait returned before a change")
	case <-time.After(20 * time.Millisecond):
	}
	c.UpdateNode("other", netip.MustParseAddr("10.42.9.1"), "1;web:80")
	if got := <-done; got != idx+1 {
		t.Fatalf("Wait = %d, want %d", got, idx+1)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if got, err := c.Wait(ctx, idx+1); !errors.Is(err, context.DeadlineExceeded) || got != idx+1 {
		t.Fatalf("Wait timeout = %d, %v", got, err)
	}

	go func() {
		_, err := c.Wait(context.Background(), c.Index())
		done <- 0
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Wait after Close = %v", err)
		}
	}()
	c.Close()
	<-done
	c.UpdateNode("late", netip.MustParseAddr("10.42.9.2"), "")
}

func TestDiffInstances(t *testing.T) {
	c, _ := newTestCatalog(t, CatalogConfig{Node: "self", Addr: netip.MustParseAddr("10.42.1.1")})
	c.Register(Service{Name: "web", Port: 80})
	c.UpdateNode("b", netip.MustParseAddr("10.42.2.1"), "1;db:5432;web:80")
	before := c.All()
	c.UpdateNode("b", netip.MustParseAddr("10.42.2.1"), "1;web:80:c")
	c.UpdateNode("c", netip.MustParseAddr("10.42.3.1"), "1;api:1")
	c.Deregister("web")
	var got []string
	for _, ch := range DiffInstances(before, c.All()) {
		s := string(ch.Kind) + " " + ch.Instance.Service.Name + "@" + ch.Instance.Node + " " + ch.Instance.Health.String()
		if ch.Old != nil {
			s += " was " + ch.Old.Health.String()
		}
		got = append(got, s)
	}
	want := []string{"added api@c passing", "removed db@b passing", "changed web@b critical was passing", "removed web@self passing"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if d := DiffInstances(before, before); len(d) != 0 {
		t.Fatalf("no change: %v", d)
	}
}
