package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse reads a policy document in YAML or JSON (JSON is read as YAML's flow style) and
// validates it. Unknown keys, aliases, duplicate keys and values of the wrong type are
// refused with their path and line; see Error. Parse does not retain data.
func Parse(data []byte) (*Document, error) {
	if len(data) > MaxDocumentSize {
		return nil, &Error{Path: "document", Rule: -1, Msg: fmt.Sprintf("%d bytes, at most %d", len(data), MaxDocumentSize)}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			// An empty document is the empty policy: allow everything.
			return &Document{}, nil
		}
		return nil, fmt.Errorf("policy: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{Path: "document", Rule: -1, Line: extra.Line, Msg: "more than one YAML document; a policy is one"}
	}
	p := &parser{lines: lineOf{}}
	d, err := p.document(&root)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) && pe.Rule >= 0 {
			pe.RuleName = ruleName(&root, pe.Rule)
		}
		return nil, err
	}
	if err := validate(d, p.lines); err != nil {
		return nil, err
	}
	return d, nil
}

type parser struct {
	lines lineOf
}

func (p *parser) fail(n *yaml.Node, path, value, msg string) error {
	return &Error{Path: path, Rule: ruleIndex(path), Line: n.Line, Value: value, Msg: msg}
}

// ruleIndex recovers the rule index from a path that starts with rules[N].
func ruleIndex(path string) int {
	rest, ok := strings.CutPrefix(path, "rules[")
	if !ok {
		return -1
	}
	num, _, ok := strings.Cut(rest, "]")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(num)
	if err != nil {
		return -1
	}
	return i
}

func (p *parser) document(n *yaml.Node) (*Document, error) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return &Document{}, nil
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return &Document{}, nil
	}
	d := &Document{}
	err := p.mapping(n, "document", func(key string, v *yaml.Node) error {
		switch key {
		case "version":
			s, err := p.scalar(v, "version", "!!int")
			if err != nil {
				return err
			}
			ver, perr := strconv.ParseUint(s, 10, 64)
			if perr != nil {
				return p.fail(v, "version", s, "must be a whole number ≥ 0")
			}
			d.Version = ver
		case "default":
			s, err := p.scalar(v, "default", "!!str")
			if err != nil {
				return err
			}
			d.Default = Action(s)
		case "rules":
			if v.Kind != yaml.SequenceNode {
				return p.fail(v, "rules", "", "must be a list of rules")
			}
			if len(v.Content) > MaxRules {
				return p.fail(v, "rules", "", fmt.Sprintf("%d rules, at most %d", len(v.Content), MaxRules))
			}
			if len(v.Content) == 0 {
				return nil // rules: [] is no rules
			}
			d.Rules = make([]Rule, len(v.Content))
			for i, rn := range v.Content {
				if err := p.rule(rn, "rules["+strconv.Itoa(i)+"]", &d.Rules[i]); err != nil {
					return err
				}
			}
		default:
			return errUnknown
		}
		return nil
	}, "version, default, rules")
	if err != nil {
		return nil, err
	}
	return d, nil
}

var errUnknown = errors.New("unknown key")

func (p *parser) rule(n *yaml.Node, path string, r *Rule) error {
	var seenFrom, seenTo bool
	err := p.mapping(n, path, func(key string, v *yaml.Node) error {
		fp := path + "." + key
		var err error
		switch key {
		case "name":
			r.Name, err = p.scalar(v, fp, "!!str")
		case "action":
			var s string
			s, err = p.scalar(v, fp, "!!str")
			r.Action = Action(s)
		case "from":
			seenFrom = true
			err = p.selector(v, fp, &r.From)
		case "to":
			seenTo = true
			err = p.selector(v, fp, &r.To)
		case "proto":
			r.Proto, err = p.scalar(v, fp, "!!str")
		case "ports":
			r.Ports, err = p.list(v, fp, true)
		default:
			return errUnknown
		}
		return err
	}, "name, action, from, to, proto, ports")
	if err != nil {
		return err
	}
	if !seenFrom {
		return p.fail(n, path+".from", "", "missing; say from: {any: true} to match every source")
	}
	if !seenTo {
		return p.fail(n, path+".to", "", "missing; say to: {any: true} to match every destination")
	}
	return nil
}

func (p *parser) selector(n *yaml.Node, path string, s *Selector) error {
	p.lines[path] = n.Line
	return p.mapping(n, path, func(key string, v *yaml.Node) error {
		fp := path + "." + key
		var err error
		switch key {
		case "any":
			var b string
			if b, err = p.scalar(v, fp, "!!bool"); err == nil {
				s.Any, err = p.boolean(v, fp, b)
			}
		case "groups":
			s.Groups, err = p.list(v, fp, false)
		case "services":
			s.Services, err = p.list(v, fp, false)
		case "cidrs":
			s.CIDRs, err = p.list(v, fp, false)
		case "hosts":
			s.Hosts, err = p.list(v, fp, false)
		case "proto":
			s.Proto, err = p.scalar(v, fp, "!!str")
		case "ports":
			s.Ports, err = p.list(v, fp, true)
		default:
			return errUnknown
		}
		return err
	}, "any, groups, services, cidrs, hosts, proto, ports")
}

func (p *parser) boolean(n *yaml.Node, path, s string) (bool, error) {
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, p.fail(n, path, s, "must be true or false")
	}
	return b, nil
}

// mapping walks a mapping node, refusing aliases, duplicate and unknown keys.
func (p *parser) mapping(n *yaml.Node, path string, field func(key string, v *yaml.Node) error, known string) error {
	if n.Kind == yaml.AliasNode {
		return p.fail(n, path, "", "aliases are not supported")
	}
	if n.Kind != yaml.MappingNode {
		return p.fail(n, path, "", "must be a mapping")
	}
	p.lines[path] = n.Line
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			return p.fail(k, path, "", "keys must be plain names")
		}
		if seen[k.Value] {
			return p.fail(k, path, k.Value, "key given twice")
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			return p.fail(v, path+"."+k.Value, "", "aliases are not supported")
		}
		child := path + "." + k.Value
		if path == "document" {
			child = k.Value
		}
		p.lines[child] = v.Line
		if err := field(k.Value, v); err != nil {
			if errors.Is(err, errUnknown) {
				return p.fail(k, path, k.Value, "unknown key (known: "+known+")")
			}
			return err
		}
	}
	return nil
}

// scalar returns a scalar's value, requiring the given tag.
func (p *parser) scalar(n *yaml.Node, path, tag string) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", p.fail(n, path, "", "must be a single value")
	}
	if n.Tag != tag {
		want := map[string]string{"!!str": "a string", "!!int": "a number", "!!bool": "true or false"}[tag]
		return "", p.fail(n, path, n.Value, "must be "+want)
	}
	return n.Value, nil
}

// list returns a sequence of scalars; numbers are accepted where ports are.
func (p *parser) list(n *yaml.Node, path string, ports bool) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.fail(n, path, "", "must be a list")
	}
	if len(n.Content) > MaxListLen {
		return nil, p.fail(n, path, "", fmt.Sprintf("%d entries, at most %d", len(n.Content), MaxListLen))
	}
	out := make([]string, 0, len(n.Content))
	for i, e := range n.Content {
		ep := path + "[" + strconv.Itoa(i) + "]"
		p.lines[ep] = e.Line
		if e.Kind != yaml.ScalarNode || !(e.Tag == "!!str" || ports && e.Tag == "!!int") {
			return nil, p.fail(e, ep, e.Value, "must be a string")
		}
		out = append(out, e.Value)
	}
	if len(out) == 0 {
		return nil, p.fail(n, path, "", "empty list; leave the key out instead")
	}
	return out, nil
}

// ruleName digs the name of rule i out of the node tree, for an error found before the
// rule was fully read; "" when it has none.
func ruleName(root *yaml.Node, i int) string {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	rules := mapValue(n, "rules")
	if rules == nil || rules.Kind != yaml.SequenceNode || i >= len(rules.Content) {
		return ""
	}
	name := mapValue(rules.Content[i], "name")
	if name == nil || name.Kind != yaml.ScalarNode || !validRuleName(name.Value) {
		return ""
	}
	return name.Value
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
