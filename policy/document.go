package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Action is what a rule (or the document's default) does with a flow it matches.
type Action string

// Actions. The empty Action means ActionAllow.
const (
	ActionAllow Action = "allow"
	ActionDeny  Action = "deny"
)

// Limits on a document, so a hostile or mistaken one cannot make compilation or the
// per-flow rule walk unbounded.
const (
	MaxDocumentSize = 1 << 20 // bytes of YAML/JSON
	MaxRules        = 1024    // rules in one document
	MaxListLen      = 1024    // entries in one selector list or port list
	maxNameLen      = 63      // group, service and host names (a DNS label)
	maxRuleNameLen  = 64
)

// Document is a policy as written by an operator. The zero Document allows everything.
// A Document returned by Parse has been validated; one built in code is validated by
// Compile (or call Validate).
type Document struct {
	// Version numbers the document; the signer sets it and the newest valid one wins.
	Version uint64 `yaml:"version,omitempty" json:"version,omitempty"`
	// Default is the verdict for a flow no rule matches: allow (also when empty) or deny.
	Default Action `yaml:"default,omitempty" json:"default,omitempty"`
	// Rules are evaluated in order; the first whose from, to and proto/ports match decides.
	Rules []Rule `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// Rule admits (or, with action deny, refuses) the flows from one selector to another.
type Rule struct {
	Name   string   `yaml:"name,omitempty" json:"name,omitempty"`
	Action Action   `yaml:"action,omitempty" json:"action,omitempty"`
	From   Selector `yaml:"from" json:"from"`
	To     Selector `yaml:"to" json:"to"`
	// Proto and Ports may be given here or on To, not both.
	Proto string   `yaml:"proto,omitempty" json:"proto,omitempty"`
	Ports []string `yaml:"ports,omitempty,flow" json:"ports,omitempty"`
}

// Selector names a set of endpoints. Within a field the entries are alternatives (OR);
// the fields that are set must all match (AND). Any matches every endpoint and stands alone.
type Selector struct {
	Any      bool     `yaml:"any,omitempty" json:"any,omitempty"`
	Groups   []string `yaml:"groups,omitempty,flow" json:"groups,omitempty"`
	Services []string `yaml:"services,omitempty,flow" json:"services,omitempty"`
	CIDRs    []string `yaml:"cidrs,omitempty,flow" json:"cidrs,omitempty"`
	Hosts    []string `yaml:"hosts,omitempty,flow" json:"hosts,omitempty"`
	// Proto and Ports are allowed on the to side only (source ports are ephemeral).
	Proto string   `yaml:"proto,omitempty" json:"proto,omitempty"`
	Ports []string `yaml:"ports,omitempty,flow" json:"ports,omitempty"`
}

// Error is a validation error: Path names the field ("rules[1].to.ports[0]"), Rule and
// RuleName the rule it belongs to (Rule is -1 outside rules), Line the source line when
// the document was parsed (0 otherwise).
type Error struct {
	Path     string
	Rule     int
	RuleName string
	Line     int
	Value    string // the offending value, "" when the error is about a missing one
	Msg      string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	b.WriteString(": ")
	if e.Value != "" {
		b.WriteString(strconv.Quote(e.Value))
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	var ctx []string
	if e.RuleName != "" {
		ctx = append(ctx, "rule "+strconv.Quote(e.RuleName))
	}
	if e.Line > 0 {
		ctx = append(ctx, "line "+strconv.Itoa(e.Line))
	}
	if len(ctx) > 0 {
		b.WriteString(" (" + strings.Join(ctx, ", ") + ")")
	}
	return b.String()
}

// Marshal returns the document as YAML. Parse(Marshal(d)) yields d again.
func (d *Document) Marshal() ([]byte, error) {
	out, err := yaml.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("policy: marshal: %w", err)
	}
	return out, nil
}

// Validate checks d as Parse does, without line numbers.
func (d *Document) Validate() error {
	return validate(d, nil)
}

// lineOf maps a field path to its source line; nil for documents built in code.
type lineOf map[string]int

func validate(d *Document, lines lineOf) error {
	mk := func(path string, rule int, value, msg string) *Error {
		e := &Error{Path: path, Rule: rule, Value: value, Msg: msg, Line: lines[path]}
		if rule >= 0 && rule < len(d.Rules) {
			e.RuleName = d.Rules[rule].Name
		}
		return e
	}
	switch d.Default {
	case "", ActionAllow, ActionDeny:
	default:
		return mk("default", -1, string(d.Default), "must be allow or deny")
	}
	if len(d.Rules) > MaxRules {
		return mk("rules", -1, "", fmt.Sprintf("%d rules, at most %d", len(d.Rules), MaxRules))
	}
	names := make(map[string]int, len(d.Rules))
	for i := range d.Rules {
		r := &d.Rules[i]
		p := "rules[" + strconv.Itoa(i) + "]"
		if r.Name != "" {
			if !validRuleName(r.Name) {
				return mk(p+".name", i, r.Name, "a rule name is 1-64 letters, digits, spaces or ._:/- characters")
			}
			if j, dup := names[r.Name]; dup {
				return mk(p+".name", i, r.Name, "also the name of rules["+strconv.Itoa(j)+"]; rule names must be unique")
			}
			names[r.Name] = i
		}
		switch r.Action {
		case "", ActionAllow, ActionDeny:
		default:
			return mk(p+".action", i, string(r.Action), "must be allow or deny")
		}
		if err := validateSelector(&r.From, p+".from", i, false, mk); err != nil {
			return err
		}
		if err := validateSelector(&r.To, p+".to", i, true, mk); err != nil {
			return err
		}
		ruleHas := r.Proto != "" || len(r.Ports) > 0
		toHas := r.To.Proto != "" || len(r.To.Ports) > 0
		if ruleHas && toHas {
			return mk(p+".proto", i, "", "proto/ports are set on both the rule and its to side; set them in one place")
		}
		proto, ports, base := r.Proto, r.Ports, p
		if toHas {
			proto, ports, base = r.To.Proto, r.To.Ports, p+".to"
		}
		if _, pe := compilePorts(proto, ports); pe != nil {
			path := base + ".proto"
			if pe.index >= 0 {
				path = base + ".ports[" + strconv.Itoa(pe.index) + "]"
			}
			return mk(path, i, pe.value, pe.msg)
		}
	}
	return nil
}

func validateSelector(s *Selector, p string, rule int, to bool, mk func(string, int, string, string) *Error) error {
	if !to && (s.Proto != "" || len(s.Ports) > 0) {
		field := ".proto"
		if s.Proto == "" {
			field = ".ports"
		}
		return mk(p+field, rule, "", "proto and ports belong on the to side or the rule (source ports are ephemeral)")
	}
	lists := []struct {
		name  string
		items []string
	}{{"groups", s.Groups}, {"services", s.Services}, {"cidrs", s.CIDRs}, {"hosts", s.Hosts}}
	set := 0
	for _, l := range lists {
		if len(l.items) > 0 {
			set++
		}
		if len(l.items) > MaxListLen {
			return mk(p+"."+l.name, rule, "", fmt.Sprintf("%d entries, at most %d", len(l.items), MaxListLen))
		}
		for j, v := range l.items {
			fp := p + "." + l.name + "[" + strconv.Itoa(j) + "]"
			if l.name == "cidrs" {
				if _, err := parseCIDR(v); err != nil {
					return mk(fp, rule, v, "not a CIDR (10.42.0.0/16, fd00::/64) or an address")
				}
				continue
			}
			if !validName(v) {
				return mk(fp, rule, v, "a name is 1-63 letters, digits or ._- characters, starting with a letter or digit")
			}
		}
	}
	if s.Any && set > 0 {
		return mk(p+".any", rule, "", "any: true matches every endpoint; drop it or the other selectors")
	}
	if !s.Any && set == 0 {
		return mk(p, rule, "", "empty selector; say any: true to match every endpoint")
	}
	return nil
}

func parseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("zone")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("zone")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return false
		}
	}
	return true
}

func validRuleName(s string) bool {
	if len(s) == 0 || len(s) > maxRuleNameLen || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && !strings.ContainsRune(" ._:/-", rune(c)) {
			return false
		}
	}
	return true
}
