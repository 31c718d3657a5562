package rootless

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, content string
		mode          os.FileMode
		want, err     string
	}{
		{"ok", "s3cret\n", 0o600, "s3cret", ""},
		{"open", "s3cret\n", 0o644, "", "is readable by group or others (mode 644): run chmod 600"},
		{"empty", " \n", 0o600, "", "is empty"},
	} {
		got, err := readSecretFile("netstack_proxy.password_file", write(tc.name, tc.content, tc.mode))
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %q, %v; want %q, %q", tc.name, got, err, tc.want, tc.err)
		}
	}
	if _, err := readSecretFile("k", filepath.Join(dir, "missing")); err == nil || !strings.HasPrefix(err.Error(), "k: ") {
		t.Errorf("missing: %v", err)
	}
}
