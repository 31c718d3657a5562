package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse_IssueExample(t *testing.T) {
	d, err := Parse([]byte(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	want := &Document{
		Version: 3,
		Default: ActionDeny,
		Rules: []Rule{
			{Name: "web-db", From: Selector{Groups: []string{"web"}}, To: Selector{Services: []string{"db"}}},
			{Name: "scrape", From: Selector{CIDRs: []string{"10.42.0.0/16"}}, To: Selector{Groups: []string{"monitoring"}, Ports: []string{"9100/tcp"}}},
			{Name: "ping", From: Selector{Any: true}, To: Selector{Any: true, Proto: "icmp"}},
		},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got %+v\nwant %+v", d, want)
	}
	// The same document as JSON parses to the same value.
	js := `{"version": 3, "default": "deny", "rules": [
	  {"name": "web-db", "from": {"groups": ["web"]}, "to": {"services": ["db"]}},
	  {"name": "scrape", "from": {"cidrs": ["10.42.0.0/16"]}, "to": {"groups": ["monitoring"], "ports": ["9100/tcp"]}},
	  {"name": "ping", "from": {"any": true}, "to": {"any": true, "proto": "icmp"}}]}`
	dj, err := Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dj, want) {
		t.Fatalf("JSON: got %+v\nwant %+v", dj, want)
	}
	// Marshal → Parse round trip.
	out, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Parse(out)
	if err != nil {
		t.Fatalf("reparse %s: %v", out, err)
	}
	if !reflect.DeepEqual(d2, want) {
		t.Fatalf("round trip: got %+v from\n%s", d2, out)
	}
}

func TestParse_Empty(t *testing.T) {
	for _, in := range []string{"", "# nothing\n", "{}", "null"} {
		d, err := Parse([]byte(in))
		if err != nil || d.Default != "" || len(d.Rules) != 0 {
			t.Errorf("Parse(%q) = %+v, %v; want the empty policy", in, d, err)
		}
	}
}

func TestParse_Errors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"port out of range", `
rules:
  - from: {any: true}
    to: {any: true}
  - name: db
    from: {groups: [web]}
    to: {groups: [db], ports: ["70000/tcp"]}
`, `rules[1].to.ports[0]: "70000/tcp": port out of range (rule "db", line 7)`},
		{"unknown key in selector", `
rules:
  - from: {any: true}
    to: {any: true, port: 22}
`, `rules[0].to: "port": unknown key (known: any, groups, services, cidrs, hosts, proto, ports) (line 4)`},
		{"unknown top-level key", "defualt: deny\n", `document: "defualt": unknown key (known: version, default, rules) (line 1)`},
		{"bad default", "default: drop\n", `default: "drop": must be allow or deny (line 1)`},
		{"bad action", "rules: [{name: x, action: reject, from: {any: true}, to: {any: true}}]", `rules[0].action: "reject": must be allow or deny (rule "x", line 1)`},
		{"missing from", "rules: [{to: {any: true}}]", `rules[0].from: missing`},
		{"empty selector", "rules: [{from: {}, to: {any: true}}]", `rules[0].from: empty selector`},
		{"any with groups", "rules: [{from: {any: true, groups: [a]}, to: {any: true}}]", `rules[0].from.any: any: true matches every endpoint`},
		{"bad cidr", "rules: [{from: {cidrs: [10.0.0.0/33]}, to: {any: true}}]", `rules[0].from.cidrs[0]: "10.0.0.0/33": not a CIDR`},
		{"bad group name", "rules: [{from: {groups: [\"we b\"]}, to: {any: true}}]", `rules[0].from.groups[0]: "we b": a name is`},
		{"ports on from", "rules: [{from: {any: true, ports: [\"22\"]}, to: {any: true}}]", `rules[0].from.ports: proto and ports belong on the to side`},
		{"proto and ports twice", "rules: [{from: {any: true}, to: {any: true, proto: tcp}, ports: [\"22\"]}]", `rules[0].proto: proto/ports are set on both`},
		{"icmp with ports", "rules: [{from: {any: true}, to: {any: true, proto: icmp, ports: [\"22\"]}}]", `rules[0].to.proto: "icmp": icmp has no ports`},
		{"contradicting port proto", "rules: [{from: {any: true}, to: {any: true, proto: udp, ports: [\"22/tcp\"]}}]", `rules[0].to.ports[0]: "22/tcp": protocol contradicts`},
		{"reversed range", "rules: [{from: {any: true}, to: {any: true, ports: [\"9000-8000\"]}}]", `rules[0].to.ports[0]: "9000-8000": range ends below its start`},
		{"port zero", "rules: [{from: {any: true}, to: {any: true, ports: [0]}}]", `rules[0].to.ports[0]: "0": port out of range`},
		{"bad proto", "rules: [{from: {any: true}, to: {any: true, proto: sctp}}]", `rules[0].to.proto: "sctp": must be tcp, udp, icmp or any`},
		{"duplicate names", "rules: [{name: a, from: {any: true}, to: {any: true}}, {name: a, from: {any: true}, to: {any: true}}]", `rules[1].name: "a": also the name of rules[0]`},
		{"duplicate key", "default: deny\ndefault: allow\n", `document: "default": key given twice (line 2)`},
		{"alias", "x: &a {any: true}\n", `unknown key`},
		{"alias in rule", "rules:\n  - from: &a {any: true}\n    to: *a\n", `rules[0].to: aliases are not supported (line 3)`},
		{"version string", "version: three\n", `version: "three": must be a number (line 1)`},
		{"negative version", "version: -1\n", `version: "-1": must be a whole number`},
		{"any not bool", "rules: [{from: {any: yes please}, to: {any: true}}]", `rules[0].from.any: "yes please": must be true or false`},
		{"rules not a list", "rules: {a: b}\n", `rules: must be a list of rules (line 1)`},
		{"two documents", "default: deny\n---\ndefault: allow\n", `more than one YAML document`},
		{"syntax", "rules: [\n", `policy: yaml:`},
		{"unknown key names the rule", "rules:\n  - from: {any: true}\n    to: {any: true, port: 22}\n    name: ssh\n", `rules[0].to: "port": unknown key (known: any, groups, services, cidrs, hosts, proto, ports) (rule "ssh", line 3)`},
		{"json unknown key", `{"rules": [{"from": {"any": true}, "to": {"any": true}, "port": "22"}]}`, `rules[0]: "port": unknown key`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse accepted %q as %+v", tt.in, d)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParse_PortForms(t *testing.T) {
	tests := []struct {
		proto string
		ports []string
		want  l4Match
	}{
		{"", nil, l4Match{mask: ProtoAny}},
		{"icmp", nil, l4Match{mask: ProtoICMP}},
		{"", []string{"53"}, l4Match{mask: ProtoTCP | ProtoUDP, ports: []portRange{{53, 53, ProtoTCP | ProtoUDP}}}},
		{"tcp", []string{"53"}, l4Match{mask: ProtoTCP, ports: []portRange{{53, 53, ProtoTCP}}}},
		{"any", []string{"5432/tcp", "8000-8100/udp"}, l4Match{mask: ProtoTCP | ProtoUDP, ports: []portRange{{5432, 5432, ProtoTCP}, {8000, 8100, ProtoUDP}}}},
		{"", []string{"1-65535"}, l4Match{mask: ProtoTCP | ProtoUDP, ports: []portRange{{1, 65535, ProtoTCP | ProtoUDP}}}},
	}
	for _, tt := range tests {
		got, err := compilePorts(tt.proto, tt.ports)
		if err != nil {
			t.Errorf("compilePorts(%q, %q): %v", tt.proto, tt.ports, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("compilePorts(%q, %q) = %+v, want %+v", tt.proto, tt.ports, got, tt.want)
		}
	}
}

func TestParsePortProto(t *testing.T) {
	tests := []struct {
		in    string
		port  uint16
		proto Proto
		bad   bool
	}{
		{"5432/tcp", 5432, ProtoTCP, false},
		{"53/udp", 53, ProtoUDP, false},
		{"22", 22, ProtoTCP, false},
		{"icmp", 0, ProtoICMP, false},
		{"1-2/tcp", 0, 0, true},
		{"70000/tcp", 0, 0, true},
		{"x", 0, 0, true},
	}
	for _, tt := range tests {
		port, proto, err := ParsePortProto(tt.in)
		if (err != nil) != tt.bad || port != tt.port || proto != tt.proto {
			t.Errorf("ParsePortProto(%q) = %d, %v, %v", tt.in, port, proto, err)
		}
	}
}

func TestDocument_ValidateBuiltInCode(t *testing.T) {
	d := &Document{Rules: []Rule{{Name: "x", From: Selector{Any: true}, To: Selector{Any: true, Ports: []string{"99999"}}}}}
	err := d.Validate()
	if err == nil || err.Error() != `rules[0].to.ports[0]: "99999": port out of range (rule "x")` {
		t.Fatalf("Validate = %v", err)
	}
	if _, err := Compile(d, cluster()); err == nil {
		t.Fatal("Compile accepted an invalid document")
	}
}
