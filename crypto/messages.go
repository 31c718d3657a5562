package crypto

import (
	"encoding/binary"
	"time"

	"golang.zx2c4.com/wireguard/tai64n"
)

// Wire message types. The type is one byte followed by three zero bytes; read
// as a little-endian uint32 as WireGuard does.
const (
	MessageInitiationType  = 1
	MessageResponseType    = 2
	MessageCookieReplyType = 3
	MessageTransportType   = 4
)

// Wire message sizes in bytes.
const (
	MessageInitiationSize      = 148
	MessageResponseSize        = 92
	MessageCookieReplySize     = 64
	MessageTransportHeaderSize = 16 // type(4) | receiver(4) | counter(8, LE)
	MessageTransportTagSize    = 16 // Poly1305
	MessageTransportOverhead   = MessageTransportHeaderSize + MessageTransportTagSize
	// MessageKeepaliveSize is a transport message with no payload.
	MessageKeepaliveSize = MessageTransportOverhead
)

// Field offsets of the handshake messages (WireGuard paper §5.4.2–5.4.7).
const (
	// initiation: type | sender | ephemeral | static+tag | timestamp+tag | mac1 | mac2
	initSender    = 4
	initEphemeral = 8
	initStatic    = 40
	initTimestamp = 88
	initMAC1      = 116
	initMAC2      = 132

	// response: type | sender | receiver | ephemeral | empty tag | mac1 | mac2
	respSender    = 4
	respReceiver  = 8
	respEphemeral = 12
	respEmpty     = 44
	respMAC1      = 60
	respMAC2      = 76

	// cookie reply: type | receiver | nonce(24) | cookie(16)+tag
	cookieReceiver = 4
	cookieNonce    = 8
	cookieSealed   = 32
)

// messageType returns the type of msg or 0 when the three padding bytes are
// not zero or msg is too short.
func messageType(msg []byte) uint32 {
	if len(msg) < 4 {
		return 0
	}
	return binary.LittleEndian.Uint32(msg)
}

// handshakeMACOffsets returns where mac1 and mac2 start in a type-1 or type-2
// message of the right size, ok false for anything else.
func handshakeMACOffsets(msg []byte) (mac1, mac2 int, ok bool) {
	switch messageType(msg) {
	case MessageInitiationType:
		if len(msg) == MessageInitiationSize {
			return initMAC1, initMAC2, true
		}
	case MessageResponseType:
		if len(msg) == MessageResponseSize {
			return respMAC1, respMAC2, true
		}
	}
	return 0, 0, false
}

// ParseTransportHeader returns the receiver index and counter of a type-4
// message. It checks the type and that msg can hold header and tag
// (ErrShortMessage, ErrWrongType); it does not authenticate anything.
func ParseTransportHeader(msg []byte) (receiver uint32, counter uint64, err error) {
	if len(msg) < MessageTransportOverhead {
		return 0, 0, ErrShortMessage
	}
	if binary.LittleEndian.Uint32(msg) != MessageTransportType {
		return 0, 0, ErrWrongType
	}
	return binary.LittleEndian.Uint32(msg[4:]), binary.LittleEndian.Uint64(msg[8:]), nil
}

// putTransportHeader writes a type-4 header into b[0:16].
func putTransportHeader(b []byte, receiver uint32, counter uint64) {
	_ = b[MessageTransportHeaderSize-1]
	binary.LittleEndian.PutUint32(b, MessageTransportType)
	binary.LittleEndian.PutUint32(b[4:], receiver)
	binary.LittleEndian.PutUint64(b[8:], counter)
}

// Handshake timestamps are TAI64N as in tai64n.Now, taken from the
// handshake's clock (so tests can move time) with the nanoseconds rounded
// down to 2^24 ns, WireGuard's whitening against timing side channels.
const (
	tai64nBase     = uint64(0x400000000000000a)
	tai64nWhitener = uint32(0x1000000 - 1)
)

func timestamp(t time.Time) tai64n.Timestamp {
	var ts tai64n.Timestamp
	binary.BigEndian.PutUint64(ts[:], tai64nBase+uint64(t.Unix()))
	binary.BigEndian.PutUint32(ts[8:], uint32(t.Nanosecond())&^tai64nWhitener)
	return ts
}
