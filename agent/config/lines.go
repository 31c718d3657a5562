package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// fileLines remembers where a file gave each key, so that a problem Resolve finds later
// names the line. Flags are applied over the file after it is read: a setting's line is
// cited only while the setting still holds the value the file gave it (read), so that a
// value from --mode is never blamed on the file's mode: line.
type fileLines struct {
	line map[string]int // dotted key, [i] for a list entry → its line in the file
	read map[string]any // Settings key → the value the file gave it
}

// recordLines notes the line of every key of the document root, and the value each setting
// of Settings the file gave has in c (decoded from root).
func recordLines(root *yaml.Node, c *Config) *fileLines {
	f := &fileLines{line: map[string]int{}, read: map[string]any{}}
	f.walk(root, "")
	for _, s := range Settings {
		if _, ok := f.line[s.Key]; ok {
			v := reflect.ValueOf(s.Field(c)).Elem().Interface()
			if l, ok := v.([]string); ok {
				v = slices.Clone(l) // a flag's values are appended later; keep the file's own
			}
			f.read[s.Key] = v
		}
	}
	return f
}

func (f *fileLines) walk(n *yaml.Node, key string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			f.walk(c, key)
		}
	case yaml.AliasNode:
		if n.Alias != nil {
			f.walk(n.Alias, key)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if key != "" {
				k = key + "." + k
			}
			f.line[k] = n.Content[i].Line
			f.walk(n.Content[i+1], k)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			k := key + "[" + strconv.Itoa(i) + "]"
			f.line[k] = c.Line
			f.walk(c, k)
		}
	}
}

// lineOf returns the file's line of key ("mode", "dns.listen[1]", "services[0]"), or 0 when
// c was not read from a file, the file did not give key, or a flag has replaced its value.
func (c *Config) lineOf(key string) int {
	f := c.file
	if f == nil {
		return 0
	}
	line := f.line[key]
	if line == 0 {
		return 0
	}
	base, idx := key, -1
	if i := strings.IndexByte(key, '['); i >= 0 {
		base = key[:i]
		n, err := strconv.Atoi(strings.TrimSuffix(key[i+1:], "]"))
		if err != nil {
			return line // deeper inside a record: records are YAML only, no flag replaces them
		}
		idx = n
	}
	want, ok := f.read[base]
	if !ok {
		return line // a list of records: YAML only
	}
	s, ok := settingByKey(base)
	if !ok {
		return 0
	}
	now := reflect.ValueOf(s.Field(c)).Elem().Interface()
	if idx < 0 {
		if reflect.DeepEqual(now, want) {
			return line
		}
		return 0
	}
	nv, wv := reflect.ValueOf(now), reflect.ValueOf(want)
	if nv.Kind() == reflect.Slice && idx < nv.Len() && idx < wv.Len() && reflect.DeepEqual(nv.Index(idx).Interface(), wv.Index(idx).Interface()) {
		return line
	}
	return 0
}

// at is " (line N)" for messages that carry their line inside ("services[0] (line 3): …"),
// empty when the line is unknown.
func at(line int) string {
	if line > 0 {
		return fmt.Sprintf(" (line %d)", line)
	}
	return ""
}
