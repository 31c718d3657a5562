package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Limits of a service registration. They keep every field encodable in the compact
// catalog tag (service_codec.go) and in DNS.
const (
	// MaxServiceNameLen is the longest service name: one DNS label.
	MaxServiceNameLen = 63
	// MaxServiceTags is the most tags one service may carry.
	MaxServiceTags = 16
	// MaxTagLen is the longest single tag.
	MaxTagLen = 63
	// DefaultWeight is the weight of a service registered with Weight 0.
	DefaultWeight = 1
)

// Check defaults; see CheckDef.
const (
	// DefaultCheckInterval: often enough that a dead instance leaves DNS within about
	// half a minute with the default threshold, rare enough to cost nothing.
	DefaultCheckInterval = 10 * time.Second
	// DefaultCheckTimeout: a probe slower than this counts as a failure.
	DefaultCheckTimeout = 5 * time.Second
	// DefaultFailuresBeforeCritical: one lost probe (a GC pause, a dropped SYN) must not
	// pull an instance out of DNS.
	DefaultFailuresBeforeCritical = 2
	// DefaultPassesBeforePassing: an instance comes back on its first good probe.
	DefaultPassesBeforePassing = 1
	// MinCheckInterval guards against a typo turning a check into a busy loop.
	MinCheckInterval = 100 * time.Millisecond
)

// Named validation errors; the error returned by Service.Validate wraps one of them and
// says which field is wrong and what to do.
var (
	ErrInvalidService = errors.New("invalid service")
	ErrInvalidCheck   = errors.New("invalid check")
)

// Service is one registration: a named port on this host.
type Service struct {
	// Name is a DNS label (letters, digits, hyphens; at most 63; no leading or trailing
	// hyphen). It is folded to lower case.
	Name string `json:"name" yaml:"name"`
	// Port is the TCP/UDP port the service listens on, 1-65535.
	Port uint16 `json:"port" yaml:"port"`
	// Tags are free-form labels (printable ASCII without space , ; : — at most 16 of at
	// most 63 bytes). DNS answers TAG.NAME.service.DOMAIN with the tagged instances.
	Tags []string `json:"tags,omitempty" yaml:"tags,omitempty"`
	// Weight is the SRV weight and the share for weighted balancing; 0 means 1.
	Weight uint16 `json:"weight,omitempty" yaml:"weight,omitempty"`
	// Check is the optional health check; without one the service is always passing.
	Check *CheckDef `json:"check,omitempty" yaml:"check,omitempty"`
	// Address is where the service listens when that is not its node's overlay address:
	// a container's, from the node's subnet (ServiceAddressBits). IPv4; zero: the node's.
	Address netip.Addr `json:"address,omitzero" yaml:"address,omitempty"`
}

// ServiceAddressBits is the default prefix length of a node's subnet (the agent's per-host
// /24; CatalogConfig.SubnetBits, the cluster's subnet_len, overrides it): a service may
// name an address only inside its node's, so no member can point another's service name at
// an address of someone else's.
const ServiceAddressBits = 24

// ErrForeignAddress: a service names an address outside its node's subnet.
var ErrForeignAddress = errors.New("service address outside its node's subnet")

// AddressAllowed reports whether a service of the node at nodeAddr, whose subnet is a
// /bits, may name addr.
func AddressAllowed(nodeAddr, addr netip.Addr, bits int) bool {
	if !addr.IsValid() {
		return true
	}
	if !nodeAddr.IsValid() || !nodeAddr.Is4() {
		return false
	}
	return netip.PrefixFrom(nodeAddr, bits).Masked().Contains(addr)
}

// CheckKind is the kind of a health check.
type CheckKind uint8

// Check kinds.
const (
	CheckNone CheckKind = iota
	// CheckTCP passes when a TCP connection to Target (host:port) opens within Timeout.
	CheckTCP
	// CheckHTTP passes when GET Target (a URL) answers 2xx within Timeout; 429 is a
	// warning; anything else, or no answer, is critical.
	CheckHTTP
	// CheckExec runs Args (or Target split on spaces, without a shell): exit code 0
	// passes, 1 is a warning, anything else, a timeout or a failure to start is critical
	// (the Nagios plugin convention).
	CheckExec
	// CheckTTL passes while the service renews it (Catalog.Renew) at least every TTL.
	CheckTTL
)

var checkKindNames = [...]string{CheckNone: "", CheckTCP: "tcp", CheckHTTP: "http", CheckExec: "exec", CheckTTL: "ttl"}

// String returns "tcp", "http", "exec" or "ttl".
func (k CheckKind) String() string {
	if int(k) < len(checkKindNames) {
		return checkKindNames[k]
	}
	return fmt.Sprintf("CheckKind(%d)", uint8(k))
}

// ParseCheckKind parses "tcp", "http", "exec" or "ttl".
func ParseCheckKind(s string) (CheckKind, error) {
	for k, n := range checkKindNames {
		if n != "" && strings.EqualFold(s, n) {
			return CheckKind(k), nil
		}
	}
	return CheckNone, fmt.Errorf("%w: unknown check kind %q (want tcp, http, exec or ttl)", ErrInvalidCheck, s)
}

// MarshalText implements encoding.TextMarshaler.
func (k CheckKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *CheckKind) UnmarshalText(b []byte) error {
	v, err := ParseCheckKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// CheckDef describes a health check run by the agent that owns the service.
//
// State machine (checks.go): a new check starts critical, so an instance is answered
// only after it has proven itself. PassesBeforePassing consecutive passes make it
// passing; FailuresBeforeCritical consecutive non-passes (warning or critical results)
// make it take that result's state. Once non-passing, each further result sets the state
// directly (warning ↔ critical). TTL checks ignore both thresholds: a renewal passes at
// once and an expiry is critical at once.
type CheckDef struct {
	// Kind is tcp, http, exec or ttl.
	Kind CheckKind `json:"kind" yaml:"kind"`
	// Target is host:port (tcp), a URL (http) or a command line split on spaces (exec,
	// used when Args is empty). Unused for ttl.
	Target string `json:"target,omitempty" yaml:"target,omitempty"`
	// Args is the exec check's argv; it wins over Target.
	Args []string `json:"args,omitempty" yaml:"args,omitempty"`
	// Interval between probes (not ttl); 0 means DefaultCheckInterval.
	Interval time.Duration `json:"interval,omitempty" yaml:"interval,omitempty"`
	// Timeout of one probe; 0 means DefaultCheckTimeout, capped at Interval.
	Timeout time.Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// TTL is how long a renewal keeps a ttl check passing.
	TTL time.Duration `json:"ttl,omitempty" yaml:"ttl,omitempty"`
	// FailuresBeforeCritical consecutive failures turn a passing check critical; 0 means
	// DefaultFailuresBeforeCritical.
	FailuresBeforeCritical int `json:"failures_before_critical,omitempty" yaml:"failures_before_critical,omitempty"`
	// PassesBeforePassing consecutive passes turn a failing check passing; 0 means
	// DefaultPassesBeforePassing.
	PassesBeforePassing int `json:"passes_before_passing,omitempty" yaml:"passes_before_passing,omitempty"`
}

// checkDefJSON carries durations as Go duration strings ("10s") in JSON.
type checkDefJSON struct {
	Kind                   CheckKind `json:"kind"`
	Target                 string    `json:"target,omitempty"`
	Args                   []string  `json:"args,omitempty"`
	Interval               jsonDur   `json:"interval,omitempty"`
	Timeout                jsonDur   `json:"timeout,omitempty"`
	TTL                    jsonDur   `json:"ttl,omitempty"`
	FailuresBeforeCritical int       `json:"failures_before_critical,omitempty"`
	PassesBeforePassing    int       `json:"passes_before_passing,omitempty"`
}

// jsonDur is a time.Duration written as "1.5s"; it also reads integer nanoseconds.
type jsonDur time.Duration

func (d jsonDur) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *jsonDur) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: want a string like \"10s\": %w", err)
		}
		*d = jsonDur(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = jsonDur(v)
	return nil
}

// MarshalJSON writes durations as strings ("10s").
func (c CheckDef) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkDefJSON{c.Kind, c.Target, c.Args, jsonDur(c.Interval), jsonDur(c.Timeout),
		jsonDur(c.TTL), c.FailuresBeforeCritical, c.PassesBeforePassing})
}

// UnmarshalJSON reads durations as strings ("10s") or integer nanoseconds.
func (c *CheckDef) UnmarshalJSON(b []byte) error {
	var j checkDefJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = CheckDef{j.Kind, j.Target, j.Args, time.Duration(j.Interval), time.Duration(j.Timeout),
		time.Duration(j.TTL), j.FailuresBeforeCritical, j.PassesBeforePassing}
	return nil
}

// Health is the state of a service instance.
type Health uint8

// Health states. The zero value is passing: a service without a check is passing.
const (
	HealthPassing Health = iota
	HealthWarning
	HealthCritical
)

var healthNames = [...]string{"passing", "warning", "critical"}

// String returns "passing", "warning" or "critical".
func (h Health) String() string {
	if int(h) < len(healthNames) {
		return healthNames[h]
	}
	return fmt.Sprintf("Health(%d)", uint8(h))
}

// MarshalText implements encoding.TextMarshaler.
func (h Health) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Health) UnmarshalText(b []byte) error {
	for i, n := range healthNames {
		if string(b) == n {
			*h = Health(i)
			return nil
		}
	}
	return fmt.Errorf("unknown health %q (want passing, warning or critical)", b)
}

// Normalized returns a copy with the name folded to lower case, Weight 0 replaced by
// DefaultWeight and the check's zero fields replaced by their defaults. It does not
// validate.
func (s Service) Normalized() Service {
	s.Name = strings.ToLower(s.Name)
	if s.Weight == 0 {
		s.Weight = DefaultWeight
	}
	if len(s.Tags) > 0 {
		s.Tags = append([]string(nil), s.Tags...)
	} else {
		s.Tags = nil
	}
	if s.Check != nil {
		c := *s.Check
		c.Args = append([]string(nil), c.Args...)
		if len(c.Args) == 0 {
			c.Args = nil
		}
		if c.Kind != CheckTTL {
			if c.Interval == 0 {
				c.Interval = DefaultCheckInterval
			}
			if c.Timeout == 0 {
				c.Timeout = min(DefaultCheckTimeout, c.Interval)
			}
		}
		if c.FailuresBeforeCritical == 0 {
			c.FailuresBeforeCritical = DefaultFailuresBeforeCritical
		}
		if c.PassesBeforePassing == 0 {
			c.PassesBeforePassing = DefaultPassesBeforePassing
		}
		s.Check = &c
	}
	return s
}

// Validate reports the first problem with s, wrapping ErrInvalidService or
// ErrInvalidCheck. Call it on a Normalized service.
func (s Service) Validate() error {
	if err := ValidateServiceName(s.Name); err != nil {
		return err
	}
	if s.Port == 0 {
		return fmt.Errorf("%w %q: port is missing (1-65535)", ErrInvalidService, s.Name)
	}
	if len(s.Tags) > MaxServiceTags {
		return fmt.Errorf("%w %q: %d tags, at most %d", ErrInvalidService, s.Name, len(s.Tags), MaxServiceTags)
	}
	for _, t := range s.Tags {
		if err := validateTag(t); err != nil {
			return fmt.Errorf("%w %q: %v", ErrInvalidService, s.Name, err)
		}
	}
	if s.Check != nil {
		if err := s.Check.validate(); err != nil {
			return fmt.Errorf("service %q: %w", s.Name, err)
		}
	}
	if s.Address.IsValid() && (!s.Address.Is4() || s.Address.IsUnspecified()) {
		return fmt.Errorf("%w %q: address %s: an IPv4 address of the overlay (a container's)", ErrInvalidService, s.Name, s.Address)
	}
	return nil
}

// ValidateServiceName checks that name is a lower-case DNS label.
func ValidateServiceName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: name is empty", ErrInvalidService)
	}
	if len(name) > MaxServiceNameLen {
		return fmt.Errorf("%w %q: name is %d bytes, at most %d (one DNS label)", ErrInvalidService, name, len(name), MaxServiceNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w %q: name must be a DNS label: lower-case letters, digits and '-' only", ErrInvalidService, name)
		}
	}
	if name[0] == '-' || name[len(name)-1] == '-' {
		return fmt.Errorf("%w %q: name must not begin or end with '-'", ErrInvalidService, name)
	}
	return nil
}

func validateTag(t string) error {
	if t == "" || len(t) > MaxTagLen {
		return fmt.Errorf("tag %q must be 1-%d bytes", t, MaxTagLen)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c > '~' || c == ',' || c == ';' || c == ':' {
			return fmt.Errorf("tag %q: only printable ASCII without space , ; :", t)
		}
	}
	return nil
}

func (c *CheckDef) validate() error {
	switch c.Kind {
	case CheckTCP:
		if c.Target == "" || !strings.Contains(c.Target, ":") {
			return fmt.Errorf("%w: tcp check needs target host:port", ErrInvalidCheck)
		}
	case CheckHTTP:
		if !strings.HasPrefix(c.Target, "http://") && !strings.HasPrefix(c.Target, "https://") {
			return fmt.Errorf("%w: http check needs target http://... or https://...", ErrInvalidCheck)
		}
	case CheckExec:
		if len(c.argv()) == 0 {
			return fmt.Errorf("%w: exec check needs a command (target or args)", ErrInvalidCheck)
		}
	case CheckTTL:
		if c.TTL <= 0 {
			return fmt.Errorf("%w: ttl check needs ttl > 0 (e.g. 30s)", ErrInvalidCheck)
		}
		return nil
	default:
		return fmt.Errorf("%w: kind must be tcp, http, exec or ttl", ErrInvalidCheck)
	}
	if c.Interval < MinCheckInterval {
		return fmt.Errorf("%w: interval %v is below the minimum %v", ErrInvalidCheck, c.Interval, MinCheckInterval)
	}
	if c.Timeout <= 0 || c.Timeout > c.Interval {
		return fmt.Errorf("%w: timeout %v must be > 0 and at most the interval %v", ErrInvalidCheck, c.Timeout, c.Interval)
	}
	if c.FailuresBeforeCritical < 1 || c.PassesBeforePassing < 1 {
		return fmt.Errorf("%w: thresholds must be >= 1", ErrInvalidCheck)
	}
	return nil
}

// argv is the exec check's command.
func (c *CheckDef) argv() []string {
	if len(c.Args) > 0 {
		return c.Args
	}
	return strings.Fields(c.Target)
}
