package doclinks

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/meshkit/meshkit/scripts/scratch"
)

// created are the paths the docs name as what a reader makes: the module
// of the "Add a module" recipe, the one scripts/new-module's example makes,
// and files the service or a recipe writes (git-ignored, never tracked).
var created = []string{
	"modules/greeter", "modules/orders", "modules/widgets",
	"dev-certs", "compose-certs", "service.yaml",
}

var (
	link   = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	quoted = regexp.MustCompile("`([^`\\s]+)`")
)

// TestDocsPointAtFilesThatExist reads README.md and docs/*.md: each
// relative link's target (its #fragment aside) exists, relative to the
// file; each backquoted path whose first element is a folder git tracks
// (app/, cmd/, modules/...) exists in the repository, unless it is one the
// reader creates.
func TestDocsPointAtFilesThatExist(t *testing.T) {
	root := scratch.RepoRoot(t)
	out, err := exec.CommandContext(t.Context(), "git", "-C", root, "ls-files").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	folders := map[string]bool{}
	for name := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if first, _, ok := strings.Cut(name, "/"); ok {
			folders[first] = true
		}
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(root, "README.md"))
	checked := 0
	for _, doc := range docs {
		rel, _ := filepath.Rel(root, doc)
		f, err := os.Open(doc) //nolint:gosec // G304: a file of this repository
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		fenced := false
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fenced = !fenced
				continue
			}
			if fenced {
				continue
			}
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target, _, _ := strings.Cut(m[1], "#")
				if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				if !exists(filepath.Join(filepath.Dir(doc), target)) {
					t.Errorf("%s:%d: link to %s: no such file", rel, n, m[1])
				}
			}
			for _, m := range quoted.FindAllStringSubmatch(line, -1) {
				path := strings.TrimPrefix(m[1], "./")
				first, _, ok := strings.Cut(path, "/")
				if !ok || !folders[first] || isCreated(path) || strings.ContainsAny(path, "*{}<>$") {
					continue
				}
				path, _, _ = strings.Cut(path, "#")
				checked++
				if !exists(filepath.Join(root, path)) && !exists(filepath.Join(filepath.Dir(doc), path)) {
					t.Errorf("%s:%d: `%s`: no such file or folder in the repository", rel, n, m[1])
				}
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	if checked < 20 {
		t.Errorf("checked %d links and paths; the docs name far more: is the parsing broken?", checked)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func isCreated(path string) bool {
	for _, c := range created {
		if path == c || strings.HasPrefix(path, c+"/") {
			return true
		}
	}
	return false
}
