package config

import (
	"encoding"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The configuration's messages speak YAML, not Go. yaml.v3 reports an unknown key as
// "field modee not found in type agent.Config" and a wrong value as "cannot unmarshal !!str
// `x` into int": both name Go types the operator never wrote. Before decoding, checkTree
// walks the document against Config's yaml tags and reports, by line and dotted key, every
// unknown key (with the nearest known one: "modee: unknown key; did you mean mode?") and
// every value of the wrong shape ("listen_port: "abc" is not a whole number"). What it lets
// through decodes cleanly, and what the decoder still says is translated by yamlMessage.

// checkTree returns every problem of the document node n for type t, one per line.
func checkTree(n *yaml.Node, t reflect.Type) error {
	var errs []error
	walkNode(n, t, "", &errs)
	return errors.Join(errs...)
}

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType        = reflect.TypeFor[time.Duration]()
)

func walkNode(n *yaml.Node, t reflect.Type, key string, errs *[]error) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			walkNode(c, t, key, errs)
		}
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		walkNode(n.Alias, t, key, errs)
		return
	}
	if n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	add := func(format string, args ...any) {
		*errs = append(*errs, &Error{Key: key, Line: n.Line, Err: fmt.Errorf("%s: "+format, append([]any{key}, args...)...)})
	}
	// Types that read themselves (Prefix, Addr, AddrPort, Duration, CheckKind) check their
	// own value and name the line; only their shape is checked here.
	if reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		if t.Kind() == reflect.Struct && t.NumField() > 1 { // PeerConfig: a record that notes its line
			if n.Kind != yaml.MappingNode {
				add("must be a section of keys, not a %s", nodeKind(n))
				return
			}
			walkStruct(n, t, key, errs)
			return
		}
		if n.Kind != yaml.ScalarNode {
			add("must be a single value, not a %s", nodeKind(n))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			add("must be a section of keys, not a %s", nodeKind(n))
			return
		}
		walkStruct(n, t, key, errs)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			add("must be a list (like [a, b] or one \"- item\" per line), not a %s", nodeKind(n))
			return
		}
		for i, c := range n.Content {
			walkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", key, i), errs)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			add("must be a single value, not a %s", nodeKind(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode {
			add("must be true or false, not a %s", nodeKind(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			add("%q is not true or false", n.Value)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if t == durationType {
			if _, err := time.ParseDuration(n.Value); n.Kind != yaml.ScalarNode || err != nil {
				add("%q is not a duration (like 5s or 2m)", n.Value)
			}
			return
		}
		if _, err := strconv.ParseInt(n.Value, 0, t.Bits()); n.Kind != yaml.ScalarNode || err != nil {
			add("%q is not a whole number%s", n.Value, rangeHint(t))
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, err := strconv.ParseUint(n.Value, 0, t.Bits()); n.Kind != yaml.ScalarNode || err != nil {
			add("%q is not a whole number%s", n.Value, rangeHint(t))
		}
	}
}

// rangeHint says which numbers fit an integer field, in words.
func rangeHint(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Uint8:
		return " from 0 to 255"
	case reflect.Uint16:
		return " from 0 to 65535"
	case reflect.Uint32:
		return " from 0 to 4294967295"
	case reflect.Uint, reflect.Uint64:
		return " of 0 or more"
	}
	return ""
}

func walkStruct(n *yaml.Node, t reflect.Type, key string, errs *[]error) {
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		full := k.Value
		if key != "" {
			full = key + "." + k.Value
		}
		f, ok := fields[k.Value]
		if !ok {
			names := make([]string, 0, len(fields))
			for name := range fields {
				names = append(names, name)
			}
			msg := full + ": unknown key"
			if near := nearest(k.Value, names); near != "" {
				msg += "; did you mean " + near + "?"
			}
			*errs = append(*errs, &Error{Key: full, Line: k.Line, Err: errors.New(msg)})
			continue
		}
		walkNode(v, f, full, errs)
	}
}

// yamlFields maps the yaml keys of struct t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "section of keys"
	case yaml.SequenceNode:
		return "list"
	}
	return "single value"
}

// nearest returns the candidate closest to s in edit distance, when it is close enough to be
// a typo (at most a third of the longer word, and at least one edit allowed).
func nearest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD || d == bestD && c < best {
			best, bestD = c, d
		}
	}
	limit := max(len(s), len(best))/3 + 1
	if bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance, with a transposition counting once.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// yamlMessage translates what the decoder says, should a value get past checkTree: the Go
// type names go, the line stays.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if i := strings.Index(l, "cannot unmarshal"); i >= 0 {
			l = l[:i] + "this value has the wrong type for its key"
		}
		if i := strings.Index(l, "field "); i >= 0 && strings.Contains(l, " not found in type") {
			name := strings.Fields(l[i+len("field "):])[0]
			l = l[:i] + name + ": unknown key"
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// Check resolves c in place as Validate does, and then checks what the agent would read at
// start without opening a device or a socket: the gossip key (and its file's mode). It
// reports the problems of both at once. It is `weft agent --check` and `weft config check`.
func (c *Config) Check() error {
	raw := *c
	r, err := Resolve(raw)
	*c = r
	p := &problems{raw: &raw, errs: []error{err}}
	if !c.Gossip.Disabled {
		c.checkGossipKey(p)
	}
	return p.err()
}

// checkGossipKey adds the problems of the gossip key and addresses to p.
func (c *Config) checkGossipKey(p *problems) {
	keyKey := "gossip.key"
	if c.Gossip.KeyFile != "" {
		keyKey = "gossip.key_file"
	}
	g := c.Gossip
	stateKey := filepath.Join(c.StateDir, "gossip.key")
	if c.Trust == TrustCA && g.Key == "" && g.KeyFile == "" {
		// With the CA the key comes with the cluster: `weft init` (or the first start of a
		// host that joins nobody) writes it into the state directory, enrollment brings it.
		switch _, err := os.Stat(stateKey); {
		case err == nil:
			g.KeyFile, keyKey = stateKey, "state_dir"
		case c.JoinToken != "", len(g.Join) == 0 && len(g.RetryJoin) == 0:
			g.Insecure = true // nothing to read yet: the agent creates or receives it
		default:
			p.add("join_token", errors.New("this host joins a cluster (gossip.join / retry_join) but has neither a join token nor the cluster's gossip key and certificate in "+c.StateDir+": on the CA host (where `weft init` ran) run `weft token create` and set join_token; or set trust: shared-key and a gossip key (labs)"))
			g.Insecure = true
		}
	}
	key, err := GossipKey(g)
	switch {
	case err != nil:
		p.add(keyKey, err)
	case key == nil && !g.Insecure:
		p.add(keyKey, errors.New("no gossip key: set gossip.key_file (generate one with `weft keygen --gossip`) or gossip.insecure: true on a trusted network"))
	}
	for _, s := range []struct{ key, v string }{{"gossip.bind", c.Gossip.Bind}, {"gossip.advertise", c.Gossip.Advertise}} {
		if _, _, err := SplitHostPort(s.v, 0); err != nil {
			p.addf(s.key, "%s %w", s.key, err)
		}
	}
}
