package archtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// goFile is what the rules need to know about one Go file.
type goFile struct {
	rel     string // slash path from the module root: "state/local/local.go"
	dir     string // its package directory: "state/local" ("" at the root)
	pkg     string // package clause name
	test    bool   // a _test.go file
	imports []goImport
}

type goImport struct {
	path string // relative to the module: "state", "internal/atomicfile"
	full string // as written: "github.com/llorch/llorch/state"
	line int
}

// violation is a broken rule, printed as "file:line: imports X: rule".
type violation struct {
	file   string
	line   int
	imp    string // "" for a rule about the package itself
	reason string
}

func (v violation) String() string {
	if v.imp == "" {
		return fmt.Sprintf("%s:%d: %s", v.file, v.line, v.reason)
	}
	return fmt.Sprintf("%s:%d: imports %s: %s", v.file, v.line, v.imp, v.reason)
}

// under reports whether the module-relative path p is dir or inside it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func underAny(p string, dirs ...string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return under(p, d) })
}

// importRule restricts the llorch imports of the files it applies to.
type importRule struct {
	reason  string
	applies func(f goFile) bool
	allowed func(f goFile, imp string) bool
}

// importRules are DESIGN §1 and STYLE §6.2 as code.
var importRules = []importRule{
	{
		reason:  "state and providers import no other llorch package (state may use the leaf internal/jsonscan)",
		applies: func(f goFile) bool { return !f.test && (f.dir == "state" || f.dir == "providers") },
		allowed: func(f goFile, imp string) bool { return f.dir == "state" && imp == "internal/jsonscan" },
	},
	{
		// Suggesting names and running work on a few goroutines need
		// nothing else of llorch, so config may use these two leaves
		// (checked below).
		reason:  "config imports no other llorch package but internal/didyoumean and internal/parallel",
		applies: func(f goFile) bool { return !f.test && f.dir == "config" },
		allowed: func(_ goFile, imp string) bool { return imp == "internal/didyoumean" || imp == "internal/parallel" },
	},
	{
		reason: "internal/didyoumean, internal/parallel and internal/jsonscan are leaves that config and state rely on: they import no llorch package",
		applies: func(f goFile) bool {
			return !f.test && (f.dir == "internal/didyoumean" || f.dir == "internal/parallel" || f.dir == "internal/jsonscan")
		},
		allowed: func(goFile, string) bool { return false },
	},
	{
		reason:  "state/local, state/etcd and state/handoff import only state and internal/atomicfile (and internal/faultfs, internal/etcdtest and state/statetest in tests)",
		applies: func(f goFile) bool { return underAny(f.dir, "state/local", "state/etcd", "state/handoff") },
		allowed: func(f goFile, imp string) bool {
			if imp == "state" || imp == "internal/atomicfile" {
				return true
			}
			return f.test && (imp == "internal/faultfs" || imp == "internal/etcdtest" || imp == "state/statetest" || imp == f.dir) // f.dir: an external test package
		},
	},
	{
		reason:  "state/statetest, the conformance suite, imports only state",
		applies: func(f goFile) bool { return !f.test && under(f.dir, "state/statetest") },
		allowed: func(_ goFile, imp string) bool { return imp == "state" },
	},
	{
		reason:  "providers/llamacpp imports only providers and the public SDK's staging and GGUF packages: it sees what a third-party plugin sees",
		applies: func(f goFile) bool { return !f.test && under(f.dir, "providers/llamacpp") },
		allowed: func(_ goFile, imp string) bool {
			return imp == "providers" || imp == "providers/sdk/stage" || imp == "providers/sdk/gguf" || under(imp, "providers/llamacpp")
		},
	},
	{
		// A provider that stages models must not pull in the plugin
		// machinery or core with them.
		reason: "providers/sdk/stage imports only providers, and providers/sdk/gguf no llorch package",
		applies: func(f goFile) bool {
			return !f.test && (f.dir == "providers/sdk/stage" || f.dir == "providers/sdk/gguf")
		},
		allowed: func(f goFile, imp string) bool { return imp == "providers" && f.dir == "providers/sdk/stage" },
	},
	{
		reason:  "plan never imports internal/supervisor, apply, cmd, providers/plugin or providers/discovery",
		applies: func(f goFile) bool { return !f.test && under(f.dir, "plan") },
		allowed: func(_ goFile, imp string) bool {
			return !underAny(imp, "internal/supervisor", "apply", "cmd", "providers/plugin", "providers/discovery")
		},
	},
	{
		reason:  "internal/supervisor imports neither providers nor plan",
		applies: func(f goFile) bool { return !f.test && under(f.dir, "internal/supervisor") },
		allowed: func(_ goFile, imp string) bool { return !underAny(imp, "providers", "plan") },
	},
	{
		reason:  "internal/remote and internal/supervisor know nothing of internal/agent, which uses both",
		applies: func(f goFile) bool { return under(f.dir, "internal/remote") || under(f.dir, "internal/supervisor") },
		allowed: func(_ goFile, imp string) bool { return !under(imp, "internal/agent") },
	},
	{
		reason:  "internal/testgguf writes test fixtures: only _test.go files import it, and it imports no llorch package",
		applies: func(f goFile) bool { return !f.test },
		allowed: func(f goFile, imp string) bool { return imp != "internal/testgguf" && f.dir != "internal/testgguf" },
	},
	{
		reason:  "nothing imports cmd/...",
		applies: func(f goFile) bool { return !under(f.dir, "cmd") },
		allowed: func(_ goFile, imp string) bool { return !under(imp, "cmd") },
	},
	{
		// A third party can import neither of these, so an example that
		// does shows something no one else can copy.
		reason:  "examples import no internal/... or cmd/... package: they show what a third party can do",
		applies: func(f goFile) bool { return !f.test && under(f.dir, "examples") },
		allowed: func(_ goFile, imp string) bool { return !underAny(imp, "internal", "cmd") },
	},
}

// bannedNames are package names that say nothing about what they hold.
var bannedNames = []string{"util", "utils", "common", "helper", "helpers"}

// check applies every rule to files and returns the violations, sorted.
func check(files []goFile) []violation {
	var out []violation
	namesReported := map[string]bool{}
	for _, f := range files {
		base := f.dir[strings.LastIndex(f.dir, "/")+1:]
		if name := strings.TrimSuffix(f.pkg, "_test"); !namesReported[f.dir] && (slices.Contains(bannedNames, base) || slices.Contains(bannedNames, name)) {
			namesReported[f.dir] = true
			out = append(out, violation{file: f.rel, line: 1, reason: fmt.Sprintf(
				"package %q in directory %q: no package is named util, common or helpers; name it for what it holds", name, f.dir)})
		}
		for _, r := range importRules {
			if !r.applies(f) {
				continue
			}
			for _, imp := range f.imports {
				if !r.allowed(f, imp.path) {
					out = append(out, violation{file: f.rel, line: imp.line, imp: imp.full, reason: r.reason})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b violation) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// load parses the import clauses of every Go file under root, a module
// root. It skips testdata, vendor, and directories starting with "." or
// "_", as the go command does, and keeps only imports of the module.
func load(root string) ([]goFile, error) {
	module, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	var files []goFile
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		pf, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", rel, err)
		}
		f := goFile{rel: rel, dir: filepath.ToSlash(filepath.Dir(rel)), pkg: pf.Name.Name, test: strings.HasSuffix(name, "_test.go")}
		if f.dir == "." {
			f.dir = ""
		}
		for _, is := range pf.Imports {
			p, err := strconv.Unquote(is.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: bad import %s", rel, is.Path.Value)
			}
			if p != module && !strings.HasPrefix(p, module+"/") {
				continue
			}
			f.imports = append(f.imports, goImport{path: strings.TrimPrefix(strings.TrimPrefix(p, module), "/"), full: p, line: fset.Position(is.Pos()).Line})
		}
		files = append(files, f)
		return nil
	})
	return files, err
}

func modulePath(gomod string) (string, error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", fmt.Errorf("%s has no module line", gomod)
}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

func TestModuleFollowsTheImportRules(t *testing.T) {
	root := moduleRoot(t)
	files, err := load(root)
	if err != nil {
		t.Fatal(err)
	}
	// Guard against a walk that silently sees nothing.
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.rel] = true
	}
	for _, must := range []string{"state/state.go", "config/config.go", "providers/provider.go", "internal/archtest/archtest_test.go"} {
		if !seen[must] {
			t.Errorf("the walk from %s did not see %s", root, must)
		}
	}
	for _, v := range check(files) {
		t.Error(v)
	}
}

// Each testdata/*.txtar is a fake module; its comment lists the violations
// the checker must report for it, one per line, sorted (none for a clean tree).
func TestCheckerOnFakeTrees(t *testing.T) {
	archives, err := filepath.Glob(filepath.Join("testdata", "*.txtar"))
	if err != nil || len(archives) == 0 {
		t.Fatalf("no fake trees in testdata: %v", err)
	}
	for _, path := range archives {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			a, err := txtar.ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			if err := txtar.Write(a, root); err != nil {
				t.Fatal(err)
			}
			files, err := load(root)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range check(files) {
				got = append(got, v.String())
			}
			want := strings.TrimSpace(string(a.Comment))
			if g := strings.Join(got, "\n"); g != want {
				t.Errorf("violations:\n%s\n\nwant:\n%s", g, want)
			}
		})
	}
}

// A copy of the real module with one bad import added fails the check, and
// the report names the file, line and import.
func TestBadImportInACopyOfTheModuleIsReported(t *testing.T) {
	src := moduleRoot(t)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !strings.HasSuffix(path, ".go") && d.Name() != "go.mod" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	bad := "package state\n\nimport (\n\t\"fmt\"\n\n\t_ \"github.com/llorch/llorch/config\"\n)\n\nvar _ = fmt.Sprint\n"
	if err := os.WriteFile(filepath.Join(dst, "state", "zz_bad.go"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := load(dst)
	if err != nil {
		t.Fatal(err)
	}
	want := "state/zz_bad.go:6: imports github.com/llorch/llorch/config: state and providers import no other llorch package (state may use the leaf internal/jsonscan)"
	var found bool
	for _, v := range check(files) {
		if v.String() == want {
			found = true
		}
	}
	if !found {
		t.Errorf("the check did not report %q", want)
	}
}

func TestModulePath(t *testing.T) {
	tests := []struct {
		name, gomod, want, wantErr string
	}{
		{"plain", "module github.com/llorch/llorch\n\ngo 1.26\n", "github.com/llorch/llorch", ""},
		{"comment first and quoted", "// the module\nmodule \"example.com/m\"\n", "example.com/m", ""},
		{"not a module line", "modules x\n", "", "has no module line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "go.mod")
			if err := os.WriteFile(path, []byte(tc.gomod), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := modulePath(path)
			if got != tc.want || (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("modulePath = %q, %v; want %q, error containing %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
