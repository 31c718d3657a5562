package tap

// The checksum helpers, for the external test package (tap_linux_test.go).
var (
	CsumAdd  = csumAdd
	CsumFold = csumFold
)
