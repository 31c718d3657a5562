package testkit

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNotImportedByNonTestCode: the kit is for tests; no package's non-test files import
// it (only their _test.go files may), and it imports no weft package itself.
func TestNotImportedByNonTestCode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list over the module")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	const self = "github.com/weftnet/weft/internal/testkit"
	out, err := exec.Command(goBin, "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "github.com/weftnet/weft/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if f[0] != self && imp == self {
				t.Errorf("%s imports the test kit from a non-test file", f[0])
			}
			if f[0] == self && strings.HasPrefix(imp, "github.com/weftnet/weft/") {
				t.Errorf("the test kit imports %s: the in-package tests of that package could not use it", imp)
			}
		}
	}
}
