package protocol_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSpecNamesEveryRouteAndCode keeps docs/protocol.md true: every Route*
// path and every Code* value declared in this package must appear in it.
func TestSpecNamesEveryRouteAndCode(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, file := range names {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					val, _ := strconv.Unquote(lit.Value)
					var want string
					switch {
					case strings.HasPrefix(name.Name, "Route"):
						want = "`" + val // "GET /v1/health" appears as `GET /v1/health...
					case strings.HasPrefix(name.Name, "Code"):
						want = "`" + val + "`"
					default:
						continue
					}
					checked++
					if !strings.Contains(string(doc), want) {
						t.Errorf("docs/protocol.md does not mention %s (%s)", name.Name, want)
					}
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("checked only %d constants; the parser missed the declarations", checked)
	}
}
