package policy

import (
	"strconv"
	"strings"
)

// Proto is a protocol class as rules see it. ProtoICMP covers ICMP and ICMPv6;
// ProtoOther every IP protocol that is not TCP, UDP or ICMP (GRE, SCTP, ESP...).
type Proto uint8

// Protocol classes. ProtoAny is the union; rules without proto match it.
const (
	ProtoTCP Proto = 1 << iota
	ProtoUDP
	ProtoICMP
	ProtoOther
	ProtoAny = ProtoTCP | ProtoUDP | ProtoICMP | ProtoOther
)

// String names p as the document spells it.
func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoOther:
		return "other"
	case ProtoAny:
		return "any"
	case ProtoTCP | ProtoUDP:
		return "tcp+udp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// IP protocol numbers.
const (
	ipProtoICMP   = 1
	ipProtoTCP    = 6
	ipProtoUDP    = 17
	ipProtoICMPv6 = 58
)

// protoClass maps an IP protocol number to its class.
func protoClass(n uint8) Proto {
	switch n {
	case ipProtoTCP:
		return ProtoTCP
	case ipProtoUDP:
		return ProtoUDP
	case ipProtoICMP, ipProtoICMPv6:
		return ProtoICMP
	}
	return ProtoOther
}

// portRange is an inclusive destination port range for the protocols in mask.
type portRange struct {
	lo, hi uint16
	mask   Proto
}

// l4Match is the compiled proto/ports of a rule. With no ports, a flow matches when its
// class is in mask; with ports, it must be TCP or UDP and its destination port in a range
// for its class.
type l4Match struct {
	mask  Proto
	ports []portRange
}

func (m *l4Match) matches(class Proto, dport uint16) bool {
	if class&m.mask == 0 {
		return false
	}
	if len(m.ports) == 0 {
		return true
	}
	for _, r := range m.ports {
		if class&r.mask != 0 && dport >= r.lo && dport <= r.hi {
			return true
		}
	}
	return false
}

type portError struct {
	index int // -1: the proto field itself
	value string
	msg   string
}

func (e *portError) Error() string { return e.value + ": " + e.msg }

func parseProto(s string) (Proto, bool) {
	switch s {
	case "", "any":
		return ProtoAny, true
	case "tcp":
		return ProtoTCP, true
	case "udp":
		return ProtoUDP, true
	case "icmp":
		return ProtoICMP, true
	}
	return 0, false
}

// compilePorts turns a proto and a ports list into an l4Match. A port without /proto
// takes the rule's proto, and tcp and udp both when the proto is any or absent.
func compilePorts(proto string, ports []string) (l4Match, *portError) {
	mask, ok := parseProto(proto)
	if !ok {
		return l4Match{}, &portError{-1, proto, "must be tcp, udp, icmp or any"}
	}
	if len(ports) == 0 {
		return l4Match{mask: mask}, nil
	}
	if mask == ProtoICMP {
		return l4Match{}, &portError{-1, proto, "icmp has no ports; drop the ports or the proto"}
	}
	if len(ports) > MaxListLen {
		return l4Match{}, &portError{-1, proto, "too many ports"}
	}
	m := l4Match{mask: mask & (ProtoTCP | ProtoUDP), ports: make([]portRange, 0, len(ports))}
	for i, s := range ports {
		r, msg := parsePortRange(s, mask)
		if msg != "" {
			return l4Match{}, &portError{i, s, msg}
		}
		m.ports = append(m.ports, r)
	}
	return m, nil
}

// parsePortRange parses "5432", "5432/tcp", "8000-8100/udp" under the rule's proto mask.
func parsePortRange(s string, ruleMask Proto) (portRange, string) {
	num, pname, hasProto := strings.Cut(s, "/")
	mask := ruleMask & (ProtoTCP | ProtoUDP)
	if hasProto {
		p, ok := parseProto(pname)
		if !ok || (p != ProtoTCP && p != ProtoUDP) {
			return portRange{}, "protocol after / must be tcp or udp"
		}
		if p&ruleMask == 0 {
			return portRange{}, "protocol contradicts the rule's proto"
		}
		mask = p
	}
	los, his, isRange := strings.Cut(num, "-")
	lo, msg := parsePort(los)
	if msg != "" {
		return portRange{}, msg
	}
	hi := lo
	if isRange {
		if hi, msg = parsePort(his); msg != "" {
			return portRange{}, msg
		}
		if hi < lo {
			return portRange{}, "range ends below its start"
		}
	}
	return portRange{lo: lo, hi: hi, mask: mask}, ""
}

func parsePort(s string) (uint16, string) {
	if s == "" || len(s) > 5 {
		if len(s) > 5 && strings.Trim(s, "0123456789") == "" {
			return 0, "port out of range"
		}
		return 0, "not a port (5432, 8000-8100, 53/udp)"
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, "not a port (5432, 8000-8100, 53/udp)"
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return 0, "port out of range"
	}
	return uint16(n), ""
}

// ParsePortProto parses the port argument of `weft policy test`: "5432/tcp", "53/udp",
// "icmp" (no port), or a bare port meaning tcp.
func ParsePortProto(s string) (port uint16, proto Proto, err error) {
	if s == "icmp" {
		return 0, ProtoICMP, nil
	}
	r, msg := parsePortRange(s, ProtoTCP|ProtoUDP)
	if msg == "" && r.lo != r.hi {
		msg = "one port, not a range"
	}
	if msg != "" {
		return 0, 0, &Error{Path: "port", Rule: -1, Value: s, Msg: msg}
	}
	if !strings.Contains(s, "/") {
		r.mask = ProtoTCP
	}
	return r.lo, r.mask, nil
}
