// Package clienttag is the codec of the gossip tag in which a host announces the overlay
// addresses of the stock WireGuard clients it forwards for (agent/clients writes it,
// agent/netpolicy reads it, so that every host judges a client's traffic as that client and
// never as the host). It imports nothing of weft.
//
// The value is text (tags also leave the process as JSON and log fields), in one of two
// forms, both naming the host's /24 by its first three octets:
//
//	10.42.3:200-203,207      runs of last octets, ascending, not touching, each 1..254
//	10.42.3~<43 characters>  a 256-bit map of last octets, unpadded base64url
//
// Encode writes the run form when it is no longer than the map and the map otherwise, so a
// value is never longer than MaxLen (55) characters whatever the clients: with the key
// ("wc") and msgpack framing at most 61 of the 512 bytes of Serf metadata all tags share.
// Decode is strict: one spelling per set (the form Encode would choose, canonical runs,
// octets 0 and 255 refused: they are the /24's network and broadcast addresses).
package clienttag

import (
	"encoding/base64"
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// Key is the gossip tag key.
const Key = "wc"

// MaxLen is the longest value Encode returns and Decode accepts: "255.255.255~" and the map.
const MaxLen = 11 + 1 + mapLen

// mapLen is the length of the encoded 32-byte map.
const mapLen = 43

// Named errors of Decode (compare with errors.Is); each is a reason a member's tag is
// refused, counted by the reader.
var (
	ErrSyntax    = errors.New("clienttag: malformed")
	ErrTooLong   = errors.New("clienttag: too long")
	ErrNetwork   = errors.New("clienttag: not an IPv4 /24")
	ErrOctet     = errors.New("clienttag: address is the /24's network or broadcast, or out of range")
	ErrCanonical = errors.New("clienttag: not in canonical form")
	ErrEmpty     = errors.New("clienttag: no addresses")
)

var mapEncoding = base64.RawURLEncoding.Strict()

// Set is a decoded tag: the host's /24 and its clients' addresses in it, ascending.
type Set struct {
	Net   netip.Prefix
	Addrs []netip.Addr
}

// Encode returns the tag value announcing addrs in the /24 net; addresses outside net
// and net's network and broadcast addresses are left out. "" (delete the tag) when none is
// left.
func Encode(net netip.Prefix, addrs []netip.Addr) (string, error) {
	if !net.Addr().Is4() || net.Bits() != 24 {
		return "", ErrNetwork
	}
	net = net.Masked()
	var bits [32]byte
	n := 0
	for _, a := range addrs {
		a = a.Unmap()
		if !net.Contains(a) {
			continue
		}
		o := a.As4()[3]
		if o == 0 || o == 255 || bits[o/8]&(1<<(o%8)) != 0 {
			continue
		}
		bits[o/8] |= 1 << (o % 8)
		n++
	}
	if n == 0 {
		return "", nil
	}
	return encodeBits(net, &bits), nil
}

func encodeBits(net netip.Prefix, bits *[32]byte) string {
	b := net.Addr().As4()
	head := strconv.Itoa(int(b[0])) + "." + strconv.Itoa(int(b[1])) + "." + strconv.Itoa(int(b[2]))
	if runs := runsOf(bits); len(runs) <= mapLen {
		return head + ":" + runs
	}
	return head + "~" + mapEncoding.EncodeToString(bits[:])
}

func has(bits *[32]byte, o int) bool { return bits[o/8]&(1<<(o%8)) != 0 }

// runsOf writes the set octets as ascending, maximal runs.
func runsOf(bits *[32]byte) string {
	var sb strings.Builder
	for o := 1; o <= 254; o++ {
		if !has(bits, o) {
			continue
		}
		end := o
		for end+1 <= 254 && has(bits, end+1) {
			end++
		}
		if sb.Len() > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(o))
		if end > o {
			sb.WriteByte('-')
			sb.WriteString(strconv.Itoa(end))
		}
		o = end
	}
	return sb.String()
}

// Decode parses a tag value strictly (see the package comment).
func Decode(s string) (Set, error) {
	if len(s) > MaxLen {
		return Set{}, ErrTooLong
	}
	i := strings.IndexAny(s, ":~")
	if i < 0 {
		return Set{}, ErrSyntax
	}
	net, err := parseHead(s[:i])
	if err != nil {
		return Set{}, err
	}
	var bits [32]byte
	if s[i] == '~' {
		if len(s[i+1:]) != mapLen {
			return Set{}, ErrSyntax
		}
		n, err := mapEncoding.Decode(bits[:], []byte(s[i+1:]))
		if err != nil || n != 32 {
			return Set{}, ErrSyntax
		}
		if has(&bits, 0) || has(&bits, 255) {
			return Set{}, ErrOctet
		}
	} else if err := parseRuns(s[i+1:], &bits); err != nil {
		return Set{}, err
	}
	if bits == ([32]byte{}) {
		return Set{}, ErrEmpty
	}
	// One spelling per set: the form Encode chooses, its runs maximal.
	if encodeBits(net, &bits) != s {
		return Set{}, ErrCanonical
	}
	set := Set{Net: net}
	base := net.Addr().As4()
	for o := 1; o <= 254; o++ {
		if has(&bits, o) {
			base[3] = byte(o)
			set.Addrs = append(set.Addrs, netip.AddrFrom4(base))
		}
	}
	return set, nil
}

// parseHead reads "A.B.C" as the /24 A.B.C.0/24.
func parseHead(h string) (netip.Prefix, error) {
	parts := strings.Split(h, ".")
	if len(parts) != 3 {
		return netip.Prefix{}, ErrNetwork
	}
	var b [4]byte
	for i, p := range parts {
		v, ok := octet(p)
		if !ok {
			return netip.Prefix{}, ErrNetwork
		}
		b[i] = byte(v)
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), 24), nil
}

// octet reads a decimal 0..255 without sign or leading zeros.
func octet(s string) (int, bool) {
	if s == "" || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	return v, v <= 255
}

func parseRuns(s string, bits *[32]byte) error {
	if s == "" {
		return ErrEmpty
	}
	prev := 0
	for _, r := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(r, "-")
		lo, ok1 := octet(from)
		hi, ok2 := lo, true
		if isRange {
			hi, ok2 = octet(to)
		}
		switch {
		case !ok1 || !ok2:
			return ErrSyntax
		case lo == 0 || hi == 255 || hi > 254:
			return ErrOctet
		case hi <= lo && isRange, lo <= prev+1 && prev != 0:
			return ErrCanonical // a one-address range, or runs out of order, overlapping or touching
		}
		for o := lo; o <= hi; o++ {
			bits[o/8] |= 1 << (o % 8)
		}
		prev = hi
	}
	return nil
}
