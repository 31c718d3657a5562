package discovery

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
