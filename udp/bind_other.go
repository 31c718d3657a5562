//go:build !linux

package udp

import (
	"errors"
	"net/netip"

	"golang.zx2c4.com/wireguard/conn"
)

// Bind is, elsewhere than Linux, wireguard-go's StdNetBind: no error queue, no RouteMTU.
type Bind struct {
	conn.Bind
}

// NewBind returns a bind wrapping conn.NewStdNetBind().
func NewBind() *Bind { return &Bind{Bind: conn.NewStdNetBind()} }

// SetErrorHandler does nothing here: no error queue is read.
func (b *Bind) SetErrorHandler(fn func(e SendError)) {}

// RouteMTU is not supported here.
func (b *Bind) RouteMTU(dst netip.Addr) (int, error) { return 0, errors.ErrUnsupported }

// Stats are the bind's counters (all zero here).
type Stats struct {
	ErrQueueReported, ErrQueueMalformed, RecvTruncated, GROOverflow, GSOFallbacks, GSOSizeRefused uint64
}

// Stats returns zero counters.
func (b *Bind) Stats() Stats { return Stats{} }
