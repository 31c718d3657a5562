package crypto

// Wire message types and sizes, as in WireGuard.
const (
	MessageInitiationType  = 1
	MessageResponseType    = 2
	MessageCookieReplyType = 3
	MessageTransportType   = 4

	MessageInitiationSize      = 148
	MessageResponseSize        = 92
	MessageCookieReplySize     = 64
	MessageTransportHeaderSize = 16 // type(4) | receiver(4) | counter(8, LE)
	MessageTransportTagSize    = 16
	MessageTransportOverhead   = MessageTransportHeaderSize + MessageTransportTagSize
)
