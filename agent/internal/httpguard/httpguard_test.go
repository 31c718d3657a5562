package httpguard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadTokenFile: the errors name the setting they are about and say what to do.
func TestReadTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tok")
	for _, tt := range []struct {
		body string
		mode os.FileMode
		want string // "" ok
	}{
		{"0123456789abcdef\n", 0o600, ""},
		{"0123456789abcdef", 0o640, "chmod 600"},
		{"short", 0o600, "at least 16"},
	} {
		_ = os.Remove(path)
		if err := os.WriteFile(path, []byte(tt.body), tt.mode); err != nil {
			t.Fatal(err)
		}
		tok, err := ReadTokenFile("ui.token_file", path)
		switch {
		case tt.want == "" && (err != nil || tok != strings.TrimSpace(tt.body)):
			t.Errorf("%q %o: %q %v", tt.body, tt.mode, tok, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "ui.token_file")):
			t.Errorf("%q %o: %v, want an error naming ui.token_file and %q", tt.body, tt.mode, err, tt.want)
		}
	}
	if _, err := ReadTokenFile("ui.token_file", path+".missing"); err == nil || !strings.HasPrefix(err.Error(), "ui.token_file") {
		t.Errorf("missing file: %v", err)
	}
}
