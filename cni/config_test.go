package cni

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name string
		in   string
		code uint // 0: valid
	}{
		{"minimal", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni"}`, 0},
		{"full", `{"cniVersion":"1.0.0","name":"weft","type":"weft-cni","socket":"/tmp/s","bridge":"br9","dataDir":"/tmp/d","wait":"2s","mtu":1400,"dns":{"nameservers":["10.42.0.1"]}}`, 0},
		{"not json", `{"name":`, types.ErrDecodingFailure},
		{"wrong type", `{"name":7}`, types.ErrDecodingFailure},
		{"no name", `{"cniVersion":"1.1.0"}`, types.ErrInvalidNetworkConfig},
		{"name with slash", `{"name":"../etc"}`, types.ErrInvalidNetworkConfig},
		{"name dotdot", `{"name":".."}`, types.ErrInvalidNetworkConfig},
		{"long bridge", `{"name":"w","bridge":"abcdefghijklmnop"}`, types.ErrInvalidNetworkConfig},
		{"bridge slash", `{"name":"w","bridge":"a/b"}`, types.ErrInvalidNetworkConfig},
		{"small mtu", `{"name":"w","mtu":100}`, types.ErrInvalidNetworkConfig},
		{"bad wait", `{"name":"w","wait":"soon"}`, types.ErrInvalidNetworkConfig},
		{"negative wait", `{"name":"w","wait":"-1s"}`, types.ErrInvalidNetworkConfig},
		{"bad dns", `{"name":"w","dns":{"nameservers":["ns1"]}}`, types.ErrInvalidNetworkConfig},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf, err := ParseConfig([]byte(c.in))
			if c.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if conf.Socket == "" || conf.Bridge == "" || conf.DataDir == "" {
					t.Fatalf("defaults not filled: %+v", conf)
				}
				return
			}
			var te *types.Error
			if !errors.As(err, &te) || te.Code != c.code {
				t.Fatalf("got %v, want a CNI error with code %d", err, c.code)
			}
			if te.Details == "" {
				t.Fatalf("error %q does not say what to do", te.Msg)
			}
		})
	}
}

func TestParseConfig_Defaults(t *testing.T) {
	conf, err := ParseConfig([]byte(`{"name":"weft"}`))
	if err != nil {
		t.Fatal(err)
	}
	if conf.Socket != DefaultSocket || conf.Bridge != DefaultBridge || conf.DataDir != DefaultDataDir || conf.wait != DefaultWait {
		t.Fatalf("defaults: %+v", conf)
	}
}

// FuzzParseConfig: never panics; a configuration that parses marshals to one that parses to
// the same value.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		`{"cniVersion":"1.1.0","name":"weft","type":"weft-cni"}`,
		`{"cniVersion":"1.0.0","name":"weft","type":"weft-cni","socket":"/tmp/s","bridge":"br9","dataDir":"/tmp/d","wait":"2s","mtu":1400,"dns":{"nameservers":["10.42.0.1"]}}`,
		`{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.42.3.2/24"}]}}`,
		`{"name":"w","cni.dev/valid-attachments":[{"containerID":"c","ifname":"eth0"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c1, err := ParseConfig(data)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) {
				t.Fatalf("error is no CNI error: %v", err)
			}
			return
		}
		b, err := json.Marshal(c1)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		c2, err := ParseConfig(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(c1, c2) {
			t.Fatalf("unstable:\n%+v\n%+v", c1, c2)
		}
	})
}
