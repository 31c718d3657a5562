package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

const module = "github.com/weftnet/weft"

// datapath is weft's packet path. A package that does not exist yet is matched all the same,
// so that a rule holds the day it appears (DESIGN.md allows a `dev/` holding TUN and TAP).
var datapath = []string{"tunnel", "peers", "l2", "tap", "usernet", "dev", "udp"}

// A rule is one "Never" of DESIGN.md: no package that from matches may depend, directly or
// through others, on a package that forbid refuses it.
type rule struct {
	name   string
	text   string
	from   func(path string) bool
	forbid func(from, dep string) bool
	// tests says the rule binds each package's tests (the package compiled with its
	// _test.go files, and its external test package) as well as the package.
	tests bool
}

var rules = []rule{
	{
		name:   "crypto",
		text:   "crypto imports no weft package",
		from:   inWeft("crypto"),
		forbid: func(_, dep string) bool { return isWeft(dep) && !inWeft("crypto")(dep) },
	},
	{
		name:   "identity",
		text:   "identity imports nothing of weft but crypto",
		from:   inWeft("identity"),
		forbid: func(_, dep string) bool { return isWeft(dep) && !inWeft("identity", "crypto")(dep) },
	},
	{
		name:   "crypto-identity-policy",
		text:   "crypto, identity and policy import neither the datapath nor discovery",
		from:   inWeft("crypto", "identity", "policy"),
		forbid: depIn(append([]string{"discovery"}, datapath...)...),
	},
	{
		name:   "peers",
		text:   "peers imports neither tunnel nor discovery",
		from:   inWeft("peers"),
		forbid: depIn("tunnel", "discovery"),
	},
	{
		name:   "discovery",
		text:   "nothing in discovery imports the datapath, netproxy or the agent",
		from:   inWeft("discovery"),
		forbid: depIn(append([]string{"netproxy", "agent"}, datapath...)...),
	},
	{
		name:   "membership-catalog",
		text:   "discovery/membership does not import discovery/catalog",
		from:   inWeft("discovery/membership"),
		forbid: depIn("discovery/catalog"),
	},
	{
		name:   "catalog-membership",
		text:   "discovery/catalog does not import discovery/membership",
		from:   inWeft("discovery/catalog"),
		forbid: depIn("discovery/membership"),
	},
	{
		name:   "l2-tap",
		text:   "l2 and tap do not import tunnel",
		from:   inWeft("l2", "tap"),
		forbid: depIn("tunnel"),
	},
	{
		name:   "subsystem-agent",
		text:   "no subsystem under agent/ imports the agent root",
		from:   func(p string) bool { return inWeft("agent")(p) && p != weft("agent") },
		forbid: func(_, dep string) bool { return dep == weft("agent") },
	},
	{
		name:   "subsystem-subsystem",
		text:   "no subsystem under agent/ imports another (only the shared agent/api, agent/config and agent/internal/...; the root wires them)",
		from:   func(p string) bool { return subsystem(p) != "" },
		forbid: func(from, dep string) bool { s := subsystem(dep); return s != "" && s != subsystem(from) },
	},
	{
		name: "testkit",
		text: "no non-test code imports internal/testkit (it is for _test.go files), and the kit imports nothing of weft",
		from: isWeft,
		forbid: func(from, dep string) bool {
			if inWeft("internal/testkit")(from) {
				return isWeft(dep) && !inWeft("internal/testkit")(dep)
			}
			return inWeft("internal/testkit")(dep)
		},
	},
	{
		name:   "cmd-bench",
		text:   "nothing imports cmd or bench (cmd/weft-bench may import bench)",
		from:   isWeft,
		forbid: forbidCmdBench,
		tests:  true,
	},
	{
		name: "api-client",
		text: "agent/api links no Serf, memberlist, gVisor or netlink",
		from: inWeft("agent/api"),
		forbid: depUnder("github.com/hashicorp/serf", "github.com/hashicorp/memberlist",
			"gvisor.dev", "github.com/vishvananda/netlink"),
	},
	{
		name: "daemon-binary",
		text: "the daemon binary cmd/weft links no plotting (gonum), CNI code or testing",
		from: func(p string) bool { return p == weft("cmd/weft") },
		forbid: func(from, dep string) bool {
			return dep == "testing" || depUnder("gonum.org", "github.com/containernetworking")(from, dep)
		},
	},
}

// anchors are packages the rules are written about. Should one be renamed, the rules that name
// it would bind nothing and pass for nothing; this list fails first.
var anchors = []string{
	"crypto", "identity", "policy", "peers", "tunnel", "l2", "tap", "usernet", "netproxy",
	"discovery/membership", "discovery/catalog", "agent", "agent/api", "cmd/weft", "cmd/weft-bench", "bench",
}

func TestImportRules(t *testing.T) {
	g := load(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			bound := 0
			for _, key := range g.order {
				from, ok := g.binds(key, r)
				if !ok {
					continue
				}
				bound++
				chains := g.chains(key, from, r.forbid)
				const shown = 3
				for i, c := range chains {
					if i == shown {
						t.Errorf("%s: %s: and %d more chains", r.text, key, len(chains)-shown)
						break
					}
					t.Errorf("%s; broken by:\n\t%s", r.text, strings.Join(c, "\n\t  imports "))
				}
			}
			if bound == 0 {
				t.Errorf("%s: binds no package (renamed?)", r.text)
			}
		})
	}
}

func TestAnchorsExist(t *testing.T) {
	g := load(t)
	for _, a := range anchors {
		if _, ok := g.pkgs[weft(a)]; !ok {
			t.Errorf("package %s is gone: the import rules that name it bind nothing; update the rules", weft(a))
		}
	}
}

// forbidCmdBench refuses cmd/... and bench to everyone but themselves, and lets
// cmd/weft-bench import bench.
func forbidCmdBench(from, dep string) bool {
	if !inWeft("cmd", "bench")(dep) {
		return false
	}
	if root(from) == root(dep) {
		return false
	}
	return !(inWeft("cmd/weft-bench")(from) && inWeft("bench")(dep))
}

// subsystem is the agent subsystem a package belongs to (agent/<name>), or "" for the agent
// root, the packages every subsystem may share (agent/api, agent/config, agent/internal/...)
// and everything outside agent/.
func subsystem(path string) string {
	rel, ok := strings.CutPrefix(path, module+"/agent/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rel, "/")
	switch name {
	case "api", "config", "internal":
		return ""
	}
	return name
}

// root is the part of weft a package of cmd or bench belongs to: cmd/<name> or bench.
func root(path string) string {
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return path
	}
	parts := strings.SplitN(rel, "/", 3)
	if parts[0] == "cmd" && len(parts) > 1 {
		return "cmd/" + parts[1]
	}
	return parts[0]
}

func weft(rel string) string { return module + "/" + rel }

func isWeft(path string) bool { return under(path, module) }

// under reports whether path is root or a package below it.
func under(path, root string) bool {
	return path == root || strings.HasPrefix(path, root+"/")
}

// inWeft matches the weft packages rels and those below them.
func inWeft(rels ...string) func(string) bool {
	return func(path string) bool {
		for _, rel := range rels {
			if under(path, weft(rel)) {
				return true
			}
		}
		return false
	}
}

// depIn forbids the weft packages rels and those below them.
func depIn(rels ...string) func(from, dep string) bool {
	in := inWeft(rels...)
	return func(_, dep string) bool { return in(dep) }
}

// depUnder forbids the packages roots (full import paths) and those below them.
func depUnder(roots ...string) func(from, dep string) bool {
	return func(_, dep string) bool {
		for _, r := range roots {
			if under(dep, r) {
				return true
			}
		}
		return false
	}
}

// pkg is the part of `go list -json` the rules read.
type pkg struct {
	ImportPath string
	ForTest    string
	Imports    []string
}

// graph is the package graph of the module with its tests, as `go list -deps -test` prints
// it. A package compiled for a test carries its test in brackets: "x [y.test]".
type graph struct {
	pkgs  map[string]*pkg
	order []string
}

var (
	loadOnce sync.Once
	loaded   *graph
	errLoad  error
)

func load(t *testing.T) *graph {
	t.Helper()
	loadOnce.Do(func() { loaded, errLoad = goList() })
	if errLoad != nil {
		t.Fatal(errLoad)
	}
	return loaded
}

func goList() (*graph, error) {
	dir, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-deps", "-test", "-json", "./...")
	cmd.Dir = dir
	// The daemon runs on Linux: judge the graph its build has, from any host.
	cmd.Env = append(os.Environ(), "GOOS=linux")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps -test -json ./...: %v\n%s", err, stderr.Bytes())
	}
	g := &graph{pkgs: make(map[string]*pkg)}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading go list's output: %w", err)
		}
		g.pkgs[p.ImportPath] = p
		g.order = append(g.order, p.ImportPath)
	}
	sort.Strings(g.order)
	return g, nil
}

// moduleRoot is the directory of weft's go.mod, above the test's working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// base is the import path of a package without the test it is compiled for.
func base(key string) string {
	path, _, _ := strings.Cut(key, " [")
	return path
}

// binds reports whether rule r binds the package printed as key, and the package it speaks
// for: the package itself, or for a test's packages the package under test.
func (g *graph) binds(key string, r rule) (string, bool) {
	p := g.pkgs[key]
	path := base(key)
	switch {
	case strings.HasSuffix(path, ".test"):
		// A test main imports only the two below and the testing framework.
		return "", false
	case p.ForTest == "":
		return path, r.from(path)
	case !r.tests:
		return "", false
	case path == p.ForTest || path == p.ForTest+"_test":
		return p.ForTest, r.from(p.ForTest)
	}
	// A dependency compiled again for someone's test: its own entry is judged.
	return "", false
}

// chains walks the imports from the package printed as start, breadth first, and returns the
// shortest import chain to each package forbidden to from (not walking on beyond one).
func (g *graph) chains(start, from string, forbid func(from, dep string) bool) [][]string {
	parent := map[string]string{start: ""}
	queue := []string{start}
	var found [][]string
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := g.pkgs[cur]
		if p == nil {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := parent[imp]; seen {
				continue
			}
			parent[imp] = cur
			if forbid(from, base(imp)) {
				var chain []string
				for k := imp; k != ""; k = parent[k] {
					chain = append(chain, k)
				}
				for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
					chain[i], chain[j] = chain[j], chain[i]
				}
				found = append(found, chain)
				continue
			}
			queue = append(queue, imp)
		}
	}
	return found
}
