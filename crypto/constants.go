package crypto

import "time"

// WireGuard's timers and limits.
const (
	RekeyAfterMessages      = 1 << 60
	RejectAfterMessages     = 1<<64 - 1<<13 - 1
	RekeyAfterTime          = 120 * time.Second
	RejectAfterTime         = 180 * time.Second
	RekeyAttemptTime        = 90 * time.Second
	RekeyTimeout            = 5 * time.Second
	KeepaliveTimeout        = 10 * time.Second
	CookieRefreshTime       = 120 * time.Second
	HandshakeInitiationRate = time.Second / 50
)
