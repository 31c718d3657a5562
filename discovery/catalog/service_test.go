package catalog

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestService_Validate(t *testing.T) {
	tcp := &CheckDef{Kind: CheckTCP, Target: "127.0.0.1:80"}
	tests := []struct {
		name string
		svc  Service
		want error // nil: valid
	}{
		{"minimal", Service{Name: "web", Port: 80}, nil},
		{"upper case folded", Service{Name: "Web", Port: 80}, nil},
		{"digits and hyphen", Service{Name: "a-1", Port: 1}, nil},
		{"63 bytes", Service{Name: strings.Repeat("a", 63), Port: 1}, nil},
		{"64 bytes", Service{Name: strings.Repeat("a", 64), Port: 1}, ErrInvalidService},
		{"empty name", Service{Port: 80}, ErrInvalidService},
		{"dot", Service{Name: "a.b", Port: 80}, ErrInvalidService},
		{"underscore", Service{Name: "a_b", Port: 80}, ErrInvalidService},
		{"leading hyphen", Service{Name: "-a", Port: 80}, ErrInvalidService},
		{"trailing hyphen", Service{Name: "a-", Port: 80}, ErrInvalidService},
		{"no port", Service{Name: "web"}, ErrInvalidService},
		{"tags", Service{Name: "web", Port: 80, Tags: []string{"v=2", "primary"}}, nil},
		{"tag with colon", Service{Name: "web", Port: 80, Tags: []string{"a:b"}}, ErrInvalidService},
		{"tag with comma", Service{Name: "web", Port: 80, Tags: []string{"a,b"}}, ErrInvalidService},
		{"empty tag", Service{Name: "web", Port: 80, Tags: []string{""}}, ErrInvalidService},
		{"too many tags", Service{Name: "web", Port: 80, Tags: make([]string, 17)}, ErrInvalidService},
		{"tcp check", Service{Name: "web", Port: 80, Check: tcp}, nil},
		{"tcp no target", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckTCP}}, ErrInvalidCheck},
		{"http check", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckHTTP, Target: "http://x/health"}}, nil},
		{"http no scheme", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckHTTP, Target: "x/health"}}, ErrInvalidCheck},
		{"exec", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckExec, Target: "/bin/true"}}, nil},
		{"exec args", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckExec, Args: []string{"sh", "-c", "exit 0"}}}, nil},
		{"exec empty", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckExec}}, ErrInvalidCheck},
		{"ttl", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckTTL, TTL: time.Second}}, nil},
		{"ttl zero", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckTTL}}, ErrInvalidCheck},
		{"no kind", Service{Name: "web", Port: 80, Check: &CheckDef{}}, ErrInvalidCheck},
		{"interval too small", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckTCP, Target: "h:1", Interval: time.Millisecond}}, ErrInvalidCheck},
		{"timeout above interval", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckTCP, Target: "h:1", Interval: time.Second, Timeout: 2 * time.Second}}, ErrInvalidCheck},
		{"negative threshold", Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckTCP, Target: "h:1", FailuresBeforeCritical: -1}}, ErrInvalidCheck},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.svc.Normalized().Validate()
			if tt.want == nil && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}

func TestService_Normalized(t *testing.T) {
	s := Service{Name: "API", Port: 1, Check: &CheckDef{Kind: CheckTCP, Target: "h:1", Interval: 2 * time.Second}}.Normalized()
	if s.Name != "api" || s.Weight != DefaultWeight {
		t.Fatalf("got %+v", s)
	}
	c := s.Check
	if c.Timeout != 2*time.Second || c.FailuresBeforeCritical != DefaultFailuresBeforeCritical || c.PassesBeforePassing != DefaultPassesBeforePassing {
		t.Fatalf("check defaults: %+v", c)
	}
}

func TestCheckDef_JSON(t *testing.T) {
	in := Service{Name: "web", Port: 80, Check: &CheckDef{Kind: CheckHTTP, Target: "http://x/", Interval: 1500 * time.Millisecond, Timeout: time.Second}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"interval":"1.5s"`) || !strings.Contains(string(b), `"kind":"http"`) {
		t.Fatalf("json %s", b)
	}
	var out Service
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Check, in.Check) {
		t.Fatalf("round trip %+v != %+v", out.Check, in.Check)
	}
	if err := json.Unmarshal([]byte(`{"kind":"ttl","ttl":1000000000}`), out.Check); err != nil || out.Check.TTL != time.Second {
		t.Fatalf("integer duration: %v %v", err, out.Check.TTL)
	}
	if err := json.Unmarshal([]byte(`{"kind":"udp"}`), out.Check); !errors.Is(err, ErrInvalidCheck) {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestHealth_Text(t *testing.T) {
	for _, h := range []Health{HealthPassing, HealthWarning, HealthCritical} {
		b, _ := h.MarshalText()
		var g Health
		if err := g.UnmarshalText(b); err != nil || g != h {
			t.Fatalf("%v: %v %v", h, g, err)
		}
	}
}

func TestService_YAML(t *testing.T) {
	const doc = `
- name: web
  port: 8080
  tags: [http, v2]
  weight: 3
  check: {kind: http, target: "http://127.0.0.1:8080/health", interval: 2s, timeout: 1s, failures_before_critical: 3}
- name: job
  port: 9000
  check: {kind: ttl, ttl: 30s}
`
	var svcs []Service
	if err := yaml.Unmarshal([]byte(doc), &svcs); err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[0].Check.Kind != CheckHTTP || svcs[0].Check.Interval != 2*time.Second ||
		svcs[0].Check.FailuresBeforeCritical != 3 || svcs[1].Check.TTL != 30*time.Second || svcs[0].Tags[1] != "v2" {
		t.Fatalf("%+v %+v", svcs[0].Check, svcs[1].Check)
	}
	for _, s := range svcs {
		if err := s.Normalized().Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if err := yaml.Unmarshal([]byte("- {name: x, port: 1, check: {kind: udp}}"), &svcs); err == nil {
		t.Fatal("unknown check kind accepted")
	}
}
