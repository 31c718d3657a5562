package vxlan

import (
	"bytes"
	"errors"
	"testing"
)

func TestVXLANHeader_Put(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want []byte
		err  error
	}{
		{"ipv4", Header{VNI: 1, NextProto: ProtoIPv4}, []byte{0x0c, 0, 0, 1, 0, 0, 1, 0}, nil},
		{"ipv6", Header{VNI: 0xabcdef, NextProto: ProtoIPv6}, []byte{0x0c, 0, 0, 2, 0xab, 0xcd, 0xef, 0}, nil},
		{"ethernet", Header{VNI: 42, NextProto: ProtoEthernet}, []byte{0x0c, 0, 0, 3, 0, 0, 42, 0}, nil},
		{"plain 7348", Header{VNI: 42}, []byte{0x08, 0, 0, 0, 0, 0, 42, 0}, nil},
		{"vni too big", Header{VNI: 1 << 24}, nil, ErrVNI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, 8)
			err := tc.h.Put(b)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Put err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(b, tc.want) {
				t.Errorf("Put = % x, want % x", b, tc.want)
			}
			got, err := Parse(b)
			if err != nil || got != tc.h {
				t.Errorf("Parse = %+v, %v; want %+v", got, err, tc.h)
			}
		})
	}
	if err := (Header{}).Put(make([]byte, 7)); !errors.Is(err, ErrShort) {
		t.Errorf("short Put err = %v", err)
	}
}

func TestParseVXLAN_Errors(t *testing.T) {
	if _, err := Parse([]byte{0x08, 0, 0}); !errors.Is(err, ErrShort) {
		t.Errorf("short: %v", err)
	}
	if _, err := Parse(make([]byte, 8)); !errors.Is(err, ErrFlags) {
		t.Errorf("no I flag: %v", err)
	}
}

func FuzzParseVXLAN(f *testing.F) {
	for _, h := range []Header{{VNI: 1, NextProto: ProtoIPv4}, {VNI: MaxVNI, NextProto: ProtoIPv6}, {VNI: 7, NextProto: ProtoEthernet}, {VNI: 9, NextProto: ProtoNone}, {VNI: 3, NextProto: ProtoIPv4, Csum: CsumAccepted | CsumPartial}} {
		b := make([]byte, 8)
		_ = h.Put(b)
		f.Add(b)
	}
	f.Add([]byte{0x0c, 0xff, 0xff, 0x7f, 1, 2, 3, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			return
		}
		out := make([]byte, 8)
		if err := h.Put(out); err != nil {
			t.Fatalf("Put of parsed %+v: %v", h, err)
		}
		h2, err := Parse(out)
		if err != nil || h2 != h {
			t.Fatalf("parse→put→parse unstable: %+v → %+v (%v)", h, h2, err)
		}
	})
}
