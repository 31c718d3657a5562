package membership

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

func clSampleNodeInfo() NodeInfo {
	var n NodeInfo
	for i := range n.PublicKey {
		n.PublicKey[i] = byte(0xa0 + i)
	}
	n.DataPort = 51820
	n.Subnet = netip.MustParsePrefix("10.42.7.0/24")
	n.VNI = 1
	n.Proto = 1
	n.Mode = 3
	return n
}

func TestNodeInfo_RoundTrip(t *testing.T) {
	base := clSampleNodeInfo()
	withMAC := base
	withMAC.MAC = [6]byte{0x02, 0, 0, 0, 0, 1}
	static := base
	static.Static, static.StaticSince = true, 1_790_000_000_123
	v6 := base
	v6.Subnet = netip.MustParsePrefix("fd00:42::/64")
	none := base
	none.Subnet = netip.Prefix{}
	maxVNI := base
	maxVNI.VNI = MaxVNI
	all := static
	all.MAC = withMAC.MAC
	for _, tc := range []struct {
		name    string
		in      NodeInfo
		binSize int
	}{
		{"ipv4", base, 47},
		{"mac", withMAC, 53},
		{"static", static, 55},
		{"ipv6", v6, 59},
		{"no-subnet", none, 42},
		{"max-vni", maxVNI, 47},
		{"all", all, 61},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, err := tc.in.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if len(bin) != tc.binSize {
				t.Errorf("binary size %d, want %d", len(bin), tc.binSize)
			}
			tag, err := tc.in.EncodeTag()
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeNodeInfo(tag)
			if err != nil {
				t.Fatalf("DecodeNodeInfo(%q): %v", tag, err)
			}
			if got != tc.in {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tc.in)
			}
		})
	}
}

// TestNodeInfo_Size records the measured cost of NodeInfo in Serf's metadata.
func TestNodeInfo_Size(t *testing.T) {
	n := clSampleNodeInfo()
	bin, _ := n.MarshalBinary()
	tag, _ := n.EncodeTag()
	size := EncodedTagsSize(map[string]string{TagNodeInfo: tag})
	rawSize := EncodedTagsSize(map[string]string{TagNodeInfo: string(bin)})
	t.Logf("NodeInfo (IPv4, no MAC): %d bytes binary, %d chars in the tag; Serf metadata %d bytes (raw binary would be %d); %d of %d left",
		len(bin), len(tag), size, rawSize, TagBudget-size, TagBudget)
	if len(bin) != 47 || len(tag) != 63 || size != 70 {
		t.Errorf("sizes changed: binary %d tag %d metadata %d; update the docs and the report", len(bin), len(tag), size)
	}
}

// TestNodeInfo_RawBytesSurviveMsgpack documents why text is a choice, not a
// necessity: Serf's msgpack carries arbitrary bytes in a string.
func TestNodeInfo_RawBytesSurviveMsgpack(t *testing.T) {
	raw := make([]byte, 256)
	for i := range raw {
		raw[i] = byte(i)
	}
	var buf bytes.Buffer
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(map[string]string{"k": string(raw)}); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	if err := codec.NewDecoder(&buf, &codec.MsgpackHandle{}).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out["k"] != string(raw) {
		t.Fatal("raw bytes did not survive msgpack")
	}
}

func TestDecodeNodeInfo_Errors(t *testing.T) {
	good, _ := clSampleNodeInfo().MarshalBinary()
	mut := func(f func(b []byte) []byte) string {
		b := f(append([]byte(nil), good...))
		return tagEncoding.EncodeToString(b)
	}
	for _, tc := range []struct {
		name string
		tag  string
		want error
	}{
		{"not-base64", "!!!", ErrNodeInfoEncoding},
		{"padded", tagEncoding.EncodeToString(good) + "=", ErrNodeInfoEncoding},
		{"empty", "", ErrNodeInfoShort},
		{"short", mut(func(b []byte) []byte { return b[:41] }), ErrNodeInfoShort},
		{"short-subnet", mut(func(b []byte) []byte { return b[:45] }), ErrNodeInfoShort},
		{"trailing", mut(func(b []byte) []byte { return append(b, 0) }), ErrNodeInfoLength},
		{"too-long", strings.Repeat("A", 200), ErrNodeInfoLength},
		{"version", mut(func(b []byte) []byte { b[0] = 2; return b }), ErrNodeInfoVersion},
		{"flags", mut(func(b []byte) []byte { b[1] = 0x80; return b }), ErrNodeInfoFlags},
		{"zero-mac", mut(func(b []byte) []byte { b[1] = flagMAC; return append(b, 0, 0, 0, 0, 0, 0) }), ErrNodeInfoFlags},
		{"family", mut(func(b []byte) []byte { b[41] = 5; return b }), ErrNodeInfoSubnet},
		{"bits", mut(func(b []byte) []byte { b[46] = 33; return b }), ErrNodeInfoSubnet},
		{"unmasked", mut(func(b []byte) []byte { b[45] = 1; return b }), ErrNodeInfoSubnet},
		{"static-short", mut(func(b []byte) []byte { b[1] = flagStatic; return append(b, 1, 2, 3) }), ErrNodeInfoShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeNodeInfo(tc.tag)
			if !errors.Is(err, tc.want) {
				t.Fatalf("DecodeNodeInfo: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNodeInfo_EncodeErrors(t *testing.T) {
	n := clSampleNodeInfo()
	n.VNI = MaxVNI + 1
	if _, err := n.EncodeTag(); !errors.Is(err, ErrNodeInfoVNI) {
		t.Errorf("VNI: %v", err)
	}
	n = clSampleNodeInfo()
	n.Subnet = netip.MustParsePrefix("10.42.7.1/24")
	if _, err := n.EncodeTag(); !errors.Is(err, ErrNodeInfoSubnet) {
		t.Errorf("unmasked subnet: %v", err)
	}
}

func BenchmarkNodeInfo_EncodeDecode(b *testing.B) {
	n := clSampleNodeInfo()
	b.ReportAllocs()
	for b.Loop() {
		tag, _ := n.EncodeTag()
		if _, err := DecodeNodeInfo(tag); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecodeNodeInfo(f *testing.F) {
	n := clSampleNodeInfo()
	tag, _ := n.EncodeTag()
	f.Add(tag)
	n.MAC = [6]byte{2, 1, 2, 3, 4, 5}
	n.Static, n.StaticSince = true, 42
	tag, _ = n.EncodeTag()
	f.Add(tag)
	n.Subnet = netip.MustParsePrefix("fd00::/8")
	tag, _ = n.EncodeTag()
	f.Add(tag)
	f.Add("")
	f.Fuzz(func(t *testing.T, tag string) {
		n1, err := DecodeNodeInfo(tag)
		if err != nil {
			return
		}
		enc, err := n1.EncodeTag()
		if err != nil {
			t.Fatalf("re-encode of a decoded NodeInfo: %v", err)
		}
		n2, err := DecodeNodeInfo(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		if n1 != n2 {
			t.Fatalf("unstable: %+v vs %+v", n1, n2)
		}
		if enc != tag {
			t.Fatalf("strict decoding accepted a non-canonical tag %q (canonical %q)", tag, enc)
		}
	})
}
