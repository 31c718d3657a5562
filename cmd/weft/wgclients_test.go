package main

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/skip2/go-qrcode"
)

// The QR code is the library's bitmap, two rows a line: every module shows up, in the
// right cell half.
func TestWriteQR_HalfBlocks(t *testing.T) {
	text := "[Interface]\nAddress = 10.42.3.200/32\n"
	var b bytes.Buffer
	if err := writeQR(&b, text); err != nil {
		t.Fatal(err)
	}
	q, _ := qrcode.New(text, qrcode.Low)
	bits := q.Bitmap()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != (len(bits)+1)/2 {
		t.Fatalf("%d lines for %d rows", len(lines), len(bits))
	}
	for y, line := range lines {
		if utf8.RuneCountInString(line) != len(bits[0]) {
			t.Fatalf("line %d: %d cells, want %d", y, utf8.RuneCountInString(line), len(bits[0]))
		}
		for x, r := range []rune(line) {
			top, bottom := bits[2*y][x], 2*y+1 < len(bits) && bits[2*y+1][x]
			want := map[[2]bool]rune{{true, true}: ' ', {true, false}: '▄', {false, true}: '▀', {false, false}: '█'}[[2]bool{top, bottom}]
			if r != want {
				t.Fatalf("cell %d,%d: %q, want %q", x, y, r, want)
			}
		}
	}
}
