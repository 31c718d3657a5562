package headbuf

import "testing"

func TestBuffer_Write(t *testing.T) {
	b := New(8)
	for _, s := range []string{"abc", "defgh", "ijk"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; a full buffer must still accept (and drop) writes", s, n, err)
		}
	}
	if got := b.String(); got != "abcdefgh" {
		t.Fatalf("kept %q, want the first 8 bytes", got)
	}
}
