package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/afero"
)

// FormatSource returns src in canonical HCL layout, as `llorch fmt` writes
// it. It refuses source with syntax errors, which formatting could mangle.
func FormatSource(filename string, src []byte) ([]byte, hcl.Diagnostics) {
	if _, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos); diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), nil
}

// FormatTargets lists the files `llorch fmt` formats: the *.llorch.hcl and
// *.llorchvars.hcl files in dir, and in its subdirectories when recursive,
// sorted. Subdirectories whose names start with "." (.llorch, .git) are
// skipped. A dir that is a file is returned alone when it has one of those
// suffixes.
func FormatTargets(fs afero.Fs, dir string, recursive bool) ([]string, error) {
	if fs == nil {
		fs = afero.NewOsFs()
	}
	fi, err := fs.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("finding files to format in %s: %w", dir, err)
	}
	if !fi.IsDir() {
		if !isFormatTarget(dir) {
			return nil, fmt.Errorf("%s is not a %s or %s file", dir, ConfigSuffix, VarsSuffix)
		}
		return []string{dir}, nil
	}
	var out []string
	err = afero.Walk(fs, dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return fmt.Errorf("finding files to format in %s: %w", path, err)
		}
		if fi.IsDir() {
			if path != dir && (!recursive || strings.HasPrefix(fi.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if isFormatTarget(fi.Name()) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

func isFormatTarget(name string) bool {
	return strings.HasSuffix(name, ConfigSuffix) || strings.HasSuffix(name, VarsSuffix)
}
