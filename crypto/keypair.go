package crypto

import "time"

// Keypair holds the two transport keys of one session.
type Keypair struct{}

// LocalIndex is the receiver index peers send to us.
func (kp *Keypair) LocalIndex() uint32 { return 0 }

// RemoteIndex is the receiver index we write into our messages.
func (kp *Keypair) RemoteIndex() uint32 { return 0 }

// IsInitiator reports whether we initiated the handshake.
func (kp *Keypair) IsInitiator() bool { return false }

// Created returns the creation time.
func (kp *Keypair) Created() time.Time { return time.Time{} }

// Seal encrypts in place.
func (kp *Keypair) Seal(buf []byte, n int) (int, error) { return 0, ErrKeypairExpired }

// Open decrypts in place.
func (kp *Keypair) Open(msg []byte) ([]byte, error) { return nil, ErrShortMessage }

// NeedsRekey reports whether a new handshake is due.
func (kp *Keypair) NeedsRekey(now time.Time) bool { return false }

// ParseTransportHeader parses a type-4 header.
func ParseTransportHeader(msg []byte) (receiver uint32, counter uint64, err error) {
	return 0, 0, ErrShortMessage
}
