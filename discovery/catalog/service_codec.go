package catalog

// The catalog tag ("s") carries this node's services and their health in one short,
// printable string. Printable because Serf tags show up in member listings and logs; the
// cost against a binary encoding is about two bytes per service.
//
//	catalog = "" | "1" *( ";" service )          ; "1" is the format version
//	service = name [ "@" address ] ":" port [ ":" health [ ":" tags [ ":" weight ] ] ]
//	address = dotted-quad IPv4                   ; a container's, in the node's subnet
//	health  = "" | "w" | "c"                     ; passing | warning | critical
//	tags    = "" | tag *( "," tag )
//	weight  = decimal 2-65535                    ; omitted when 1
//
// Services are sorted by name, trailing empty fields are dropped and numbers have no
// leading zeros, so every string has exactly one encoding: the decoder rejects anything
// else, and decode → encode reproduces the input byte for byte.
//
// Example: "1;api:8080;db:5432:c;redis@10.42.3.7:6379;web:80::http,v2:3".

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

const (
	// CatalogTagKey is the Serf tag that carries the catalog.
	CatalogTagKey = "s"
	// catalogVersion is the first byte of a non-empty catalog.
	catalogVersion = '1'
	// MaxCatalogLen bounds the decoder's input: a tag holds at most 512 bytes, and a catalog
	// carried out of band (discovery/catalogdist) is bounded far below this by its limits.
	MaxCatalogLen = 1 << 20
	// OutOfBandPrefix starts a catalog tag that names its catalog by digest (version 2,
	// discovery/catalogdist) instead of carrying it; DecodeCatalog refuses it.
	OutOfBandPrefix = "2;"
)

// Named errors of DecodeCatalog; the returned error wraps one of them and ErrBadCatalog.
var (
	ErrBadCatalog          = errors.New("bad catalog tag")
	ErrCatalogVersion      = errors.New("unknown catalog version")
	ErrCatalogTooLong      = errors.New("catalog tag too long")
	ErrCatalogSyntax       = errors.New("catalog syntax")
	ErrCatalogOrder        = errors.New("catalog services not sorted or duplicated")
	ErrCatalogNonCanonical = errors.New("catalog not in canonical form")
)

// ServiceHealth is one service as other nodes see it: the registration without its check
// definition, and the check's current state.
type ServiceHealth struct {
	Service Service `json:"service"`
	Health  Health  `json:"health"`
}

// EncodeCatalog encodes services (any order; Weight 0 counts as 1; Check is ignored)
// into the catalog tag value. It fails on a service that does not Validate or on two
// services with the same name.
func EncodeCatalog(services []ServiceHealth) (string, error) {
	if len(services) == 0 {
		return "", nil
	}
	sorted := slices.Clone(services)
	slices.SortFunc(sorted, func(a, b ServiceHealth) int { return strings.Compare(a.Service.Name, b.Service.Name) })
	var b strings.Builder
	b.WriteByte(catalogVersion)
	for i, sh := range sorted {
		s := sh.Service
		s.Check = nil
		if s.Weight == 0 {
			s.Weight = DefaultWeight
		}
		if err := s.Validate(); err != nil {
			return "", err
		}
		if i > 0 && sorted[i-1].Service.Name == s.Name {
			return "", fmt.Errorf("%w %q: registered twice", ErrInvalidService, s.Name)
		}
		if sh.Health > HealthCritical {
			return "", fmt.Errorf("%w %q: unknown health %d", ErrInvalidService, s.Name, sh.Health)
		}
		b.WriteByte(';')
		b.WriteString(s.Name)
		if s.Address.IsValid() {
			b.WriteByte('@')
			b.WriteString(s.Address.String())
		}
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(int(s.Port)))
		// Optional fields, written only up to the last non-default one.
		fields := [3]string{"", strings.Join(s.Tags, ","), ""}
		switch sh.Health {
		case HealthWarning:
			fields[0] = "w"
		case HealthCritical:
			fields[0] = "c"
		}
		if s.Weight != DefaultWeight {
			fields[2] = strconv.Itoa(int(s.Weight))
		}
		n := len(fields)
		for n > 0 && fields[n-1] == "" {
			n--
		}
		for _, f := range fields[:n] {
			b.WriteByte(':')
			b.WriteString(f)
		}
	}
	return b.String(), nil
}

// DecodeCatalog parses a catalog tag value. The empty string is an empty catalog.
// Services come back sorted by name, with Weight set (1 when omitted).
func DecodeCatalog(v string) ([]ServiceHealth, error) {
	if v == "" {
		return nil, nil
	}
	if len(v) > MaxCatalogLen {
		return nil, fmt.Errorf("%w: %w: %d bytes", ErrBadCatalog, ErrCatalogTooLong, len(v))
	}
	if v[0] != catalogVersion {
		return nil, fmt.Errorf("%w: %w %q (this agent reads version %c; upgrade it)", ErrBadCatalog, ErrCatalogVersion, v[0], catalogVersion)
	}
	rest := v[1:]
	if rest == "" {
		return nil, fmt.Errorf("%w: %w: version without services", ErrBadCatalog, ErrCatalogNonCanonical)
	}
	if rest[0] != ';' {
		return nil, fmt.Errorf("%w: %w: want ';' after the version", ErrBadCatalog, ErrCatalogSyntax)
	}
	items := strings.Split(rest[1:], ";")
	out := make([]ServiceHealth, 0, len(items))
	for i, item := range items {
		sh, err := decodeService(item)
		if err != nil {
			return nil, fmt.Errorf("%w: service %d: %w", ErrBadCatalog, i, err)
		}
		if i > 0 && out[i-1].Service.Name >= sh.Service.Name {
			return nil, fmt.Errorf("%w: %w at %q", ErrBadCatalog, ErrCatalogOrder, sh.Service.Name)
		}
		out = append(out, sh)
	}
	return out, nil
}

func decodeService(item string) (ServiceHealth, error) {
	var sh ServiceHealth
	f := strings.Split(item, ":")
	if len(f) < 2 || len(f) > 5 {
		return sh, fmt.Errorf("%w: %q: want name:port[:health[:tags[:weight]]]", ErrCatalogSyntax, item)
	}
	if f[len(f)-1] == "" && len(f) > 2 {
		return sh, fmt.Errorf("%w: %q: trailing empty field", ErrCatalogNonCanonical, item)
	}
	name, addr, hasAddr := strings.Cut(f[0], "@")
	if err := ValidateServiceName(name); err != nil {
		return sh, fmt.Errorf("%w: %w", ErrCatalogSyntax, err)
	}
	sh.Service.Name = name
	if hasAddr {
		a, err := netip.ParseAddr(addr)
		if err != nil || !a.Is4() || a.IsUnspecified() || a.String() != addr {
			return sh, fmt.Errorf("%w: %q: bad address %q", ErrCatalogSyntax, item, addr)
		}
		sh.Service.Address = a
	}
	port, err := parseCanonicalUint16(f[1])
	if err != nil || port == 0 {
		return sh, fmt.Errorf("%w: %q: bad port %q", ErrCatalogSyntax, item, f[1])
	}
	sh.Service.Port = port
	sh.Service.Weight = DefaultWeight
	if len(f) > 2 {
		switch f[2] {
		case "":
		case "w":
			sh.Health = HealthWarning
		case "c":
			sh.Health = HealthCritical
		default:
			return sh, fmt.Errorf("%w: %q: bad health %q", ErrCatalogSyntax, item, f[2])
		}
	}
	if len(f) > 3 && f[3] != "" {
		sh.Service.Tags = strings.Split(f[3], ",")
		if len(sh.Service.Tags) > MaxServiceTags {
			return sh, fmt.Errorf("%w: %q: %d tags", ErrCatalogSyntax, item, len(sh.Service.Tags))
		}
		for _, t := range sh.Service.Tags {
			if err := validateTag(t); err != nil {
				return sh, fmt.Errorf("%w: %v", ErrCatalogSyntax, err)
			}
		}
	}
	if len(f) > 4 {
		w, err := parseCanonicalUint16(f[4])
		if err != nil || w == 0 {
			return sh, fmt.Errorf("%w: %q: bad weight %q", ErrCatalogSyntax, item, f[4])
		}
		if w == DefaultWeight {
			return sh, fmt.Errorf("%w: %q: default weight written out", ErrCatalogNonCanonical, item)
		}
		sh.Service.Weight = w
	}
	return sh, nil
}

// parseCanonicalUint16 accepts decimal digits without sign or leading zeros.
func parseCanonicalUint16(s string) (uint16, error) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err
}

// worstCaseCatalogLen is the tag length of services once every checked service is
// critical, the longest health encoding; a registration is admitted only if this fits, so a later
// health change can never overflow the budget.
func worstCaseCatalogLen(services []Service) (int, error) {
	shs := make([]ServiceHealth, len(services))
	for i, s := range services {
		shs[i] = ServiceHealth{Service: s}
		if s.Check != nil {
			shs[i].Health = HealthCritical
		}
	}
	v, err := EncodeCatalog(shs)
	return len(v), err
}
