package llamacpp

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/stage"
)

// providerConfig is the decoded provider "llamacpp" {} block.
type providerConfig struct {
	Binary   string        // the binary as written ("llama-server" by default); "" in source mode
	Source   *sourceConfig // nil in binary mode
	CacheDir string        // absolute
}

// sourceConfig is the decoded source {} block.
type sourceConfig struct {
	Git       string // as written, local paths made absolute
	Ref       string
	CUDA      string // "auto" | "true" | "false"
	CMakeArgs []string
	Jobs      int // 0 = number of CPUs
}

// poolConfig is the decoded pool-level llamacpp {} block.
type poolConfig struct {
	NGPULayers  *int
	TensorSplit []float64
	Threads     *int
	Parallel    *int
	APIKey      *string
}

// attr returns obj's attribute name, or a null value when obj is null or
// has no such attribute (a block left out of the configuration).
func attr(obj cty.Value, name string) cty.Value {
	if obj.IsNull() || !obj.IsKnown() || !obj.Type().IsObjectType() || !obj.Type().HasAttribute(name) {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return obj.GetAttr(name)
}

func unknownDiag(path cty.Path, name string) providers.Diagnostic {
	return providers.AttributeErrorf(path, "Unknown Value",
		"The value of %s is not known yet; llamacpp settings must be known before planning.", name)
}

// stringAttr reads an optional string; booleans and numbers convert, as HCL
// does (cuda = true reads "true").
func stringAttr(v cty.Value, path cty.Path, name string) (*string, providers.Diagnostics) {
	if v.IsNull() {
		return nil, nil
	}
	if !v.IsKnown() {
		return nil, providers.Diagnostics{unknownDiag(path, name)}
	}
	switch v.Type() {
	case cty.String:
		s := v.AsString()
		return &s, nil
	case cty.Bool:
		s := "false"
		if v.True() {
			s = "true"
		}
		return &s, nil
	case cty.Number:
		s := v.AsBigFloat().Text('f', -1)
		return &s, nil
	}
	return nil, providers.Diagnostics{providers.AttributeErrorf(path, "Incorrect Attribute Type",
		"%s must be a string, not %s.", name, v.Type().FriendlyName())}
}

// intAttr reads an optional whole number within [min, max].
func intAttr(v cty.Value, path cty.Path, name string, min, max int64, hint string) (*int, providers.Diagnostics) {
	if v.IsNull() {
		return nil, nil
	}
	if !v.IsKnown() {
		return nil, providers.Diagnostics{unknownDiag(path, name)}
	}
	if v.Type() != cty.Number {
		return nil, providers.Diagnostics{providers.AttributeErrorf(path, "Incorrect Attribute Type",
			"%s must be a number, not %s.", name, v.Type().FriendlyName())}
	}
	bf := v.AsBigFloat()
	i, acc := bf.Int64()
	if acc != big.Exact || i < min || i > max {
		return nil, providers.Diagnostics{providers.AttributeErrorf(path, "Invalid "+titleName(name),
			"%s = %s is not allowed: %s must be a whole number from %d to %d. %s", name, bf.Text('f', -1), name, min, max, hint)}
	}
	n := int(i)
	return &n, nil
}

// titleName turns "n_gpu_layers" into "N GPU Layers"-like summary text.
func titleName(name string) string {
	words := strings.Split(name, "_")
	for i, w := range words {
		switch w {
		case "gpu", "api", "cuda":
			words[i] = strings.ToUpper(w)
		default:
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
	}
	return strings.Join(words, " ")
}

func stringListAttr(v cty.Value, path cty.Path, name string) ([]string, providers.Diagnostics) {
	if v.IsNull() {
		return nil, nil
	}
	if !v.IsKnown() || !v.IsWhollyKnown() {
		return nil, providers.Diagnostics{unknownDiag(path, name)}
	}
	if !v.CanIterateElements() {
		return nil, providers.Diagnostics{providers.AttributeErrorf(path, "Incorrect Attribute Type",
			"%s must be a list of strings, not %s.", name, v.Type().FriendlyName())}
	}
	var out []string
	var diags providers.Diagnostics
	i := 0
	for it := v.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		s, d := stringAttr(ev, path.Copy().IndexInt(i), fmt.Sprintf("%s[%d]", name, i))
		diags = append(diags, d...)
		if s == nil && !d.HasErrors() {
			diags = append(diags, providers.AttributeErrorf(path.Copy().IndexInt(i), "Null List Element",
				"%s[%d] is null; remove it or give it a value.", name, i))
			continue
		}
		if s != nil {
			out = append(out, *s)
		}
	}
	return out, diags
}

// decodeProviderConfig reads the provider block. env and wd expand ~ and
// make relative paths absolute.
func decodeProviderConfig(v cty.Value, env environ, wd string) (*providerConfig, providers.Diagnostics) {
	var diags providers.Diagnostics
	cfg := &providerConfig{}

	binary, d := stringAttr(attr(v, "binary"), cty.GetAttrPath("binary"), "binary")
	diags = append(diags, d...)
	cacheDir, d := stringAttr(attr(v, "cache_dir"), cty.GetAttrPath("cache_dir"), "cache_dir")
	diags = append(diags, d...)

	if src := attr(v, "source"); !src.IsNull() {
		sc, d := decodeSourceConfig(src, wd)
		diags = append(diags, d...)
		cfg.Source = sc
		if binary != nil {
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("binary"), "Conflicting Engine Sources",
				"The llamacpp provider block sets both binary and a source block. Use binary for an installed "+
					"llama-server, or source to build one from git, not both."))
		}
	} else {
		cfg.Binary = "llama-server"
		if binary != nil {
			if strings.TrimSpace(*binary) == "" {
				diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("binary"), "Empty Binary",
					`binary is empty; set it to a path or a name on PATH, or leave it out for "llama-server".`))
			} else {
				b, err := env.expandHome(*binary)
				if err != nil {
					diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("binary"), "Invalid Binary Path",
						"binary %s.", err))
				}
				cfg.Binary = b
			}
		}
	}

	if cacheDir != nil && strings.TrimSpace(*cacheDir) != "" {
		dir, err := env.expandHome(*cacheDir)
		if err != nil {
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("cache_dir"), "Invalid Cache Directory",
				"cache_dir %s.", err))
		}
		cfg.CacheDir = stage.Resolve(dir, wd)
	} else if cacheDir != nil {
		diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("cache_dir"), "Invalid Cache Directory",
			"cache_dir is empty; set it to a directory or leave it out for the default."))
	}
	return cfg, diags
}

// scpLikeGit matches "user@host:path" git addresses (no scheme, a colon
// before the first slash).
var scpLikeGit = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[^/]+:`) })

func decodeSourceConfig(v cty.Value, wd string) (*sourceConfig, providers.Diagnostics) {
	var diags providers.Diagnostics
	base := cty.GetAttrPath("source")
	sc := &sourceConfig{CUDA: "auto"}

	git, d := stringAttr(attr(v, "git"), base.Copy().GetAttr("git"), "source.git")
	diags = append(diags, d...)
	switch {
	case git == nil || strings.TrimSpace(*git) == "":
		diags = append(diags, providers.AttributeErrorf(base.Copy().GetAttr("git"), "Missing Git Repository",
			`source.git is empty; set it to the repository to build from, e.g. "https://github.com/ggml-org/llama.cpp".`))
	case strings.HasPrefix(*git, "-"):
		diags = append(diags, providers.AttributeErrorf(base.Copy().GetAttr("git"), "Invalid Git Repository",
			"source.git %q starts with \"-\", which git would read as an option; give a URL or a path.", *git))
	case strings.Contains(*git, "://") || scpLikeGit().MatchString(*git):
		sc.Git = *git
	default:
		sc.Git = stage.Resolve(*git, wd) // a local repository; git runs in the cache, not here
	}

	ref, d := stringAttr(attr(v, "ref"), base.Copy().GetAttr("ref"), "source.ref")
	diags = append(diags, d...)
	switch {
	case ref == nil || strings.TrimSpace(*ref) == "":
		diags = append(diags, providers.AttributeErrorf(base.Copy().GetAttr("ref"), "Missing Git Ref",
			`source.ref is empty; set it to a tag, branch or commit, e.g. "b6600".`))
	case strings.HasPrefix(*ref, "-") || strings.ContainsAny(*ref, " \t\n~^:?*[\\"):
		diags = append(diags, providers.AttributeErrorf(base.Copy().GetAttr("ref"), "Invalid Git Ref",
			"source.ref %q is not a valid tag, branch or commit name.", *ref))
	default:
		sc.Ref = *ref
	}

	cuda, d := stringAttr(attr(v, "cuda"), base.Copy().GetAttr("cuda"), "source.cuda")
	diags = append(diags, d...)
	if cuda != nil {
		switch c := strings.ToLower(*cuda); c {
		case "auto", "true", "false":
			sc.CUDA = c
		default:
			diags = append(diags, providers.AttributeErrorf(base.Copy().GetAttr("cuda"), "Invalid CUDA Setting",
				`source.cuda = %q is not one of "auto", "true" or "false". "auto" builds with CUDA when nvcc is found.`, *cuda))
		}
	}

	args, d := stringListAttr(attr(v, "cmake_args"), base.Copy().GetAttr("cmake_args"), "source.cmake_args")
	diags = append(diags, d...)
	for i, a := range args {
		p := base.Copy().GetAttr("cmake_args").IndexInt(i)
		def := a
		if a == "-D" && i+1 < len(args) { // "-D NAME=VALUE" in two arguments
			def = "-D" + args[i+1]
		}
		switch {
		case cmakeDefines(def, "GGML_CUDA"):
			diags = append(diags, providers.AttributeErrorf(p, "CUDA Set In CMake Arguments",
				`source.cmake_args[%d] is %q; set source.cuda = "true" or "false" instead, so that engine_version says which build this is.`, i, a))
		case cmakeDefines(def, "BUILD_SHARED_LIBS"):
			diags = append(diags, providers.AttributeErrorf(p, "Shared Libraries Not Supported",
				"source.cmake_args[%d] is %q; llorch builds llama-server with static libraries so that the cached binary does not depend on the build directory, which is removed after the build.", i, a))
		case strings.HasPrefix(a, "-S") || strings.HasPrefix(a, "-B"):
			diags = append(diags, providers.AttributeErrorf(p, "Build Directories Set In CMake Arguments",
				"source.cmake_args[%d] is %q; llorch chooses the source and build directories itself. Remove it.", i, a))
		}
	}
	sc.CMakeArgs = args

	jobs, d := intAttr(attr(v, "jobs"), base.Copy().GetAttr("jobs"), "jobs", 1, 1024, "Leave it out to use every CPU.")
	diags = append(diags, d...)
	if jobs != nil {
		sc.Jobs = *jobs
	}
	return sc, diags
}

// cmakeDefines reports whether a cmake argument sets the cache variable
// name ("-DNAME=…" or "-DNAME:BOOL=…").
func cmakeDefines(arg, name string) bool {
	if !strings.HasPrefix(arg, "-D") {
		return false
	}
	rest := strings.TrimPrefix(arg, "-D")
	return rest == name || strings.HasPrefix(rest, name+"=") || strings.HasPrefix(rest, name+":")
}

// decodePoolConfig reads the pool's llamacpp {} block; it checks each
// attribute's own range, and validatePool checks them against the pool.
func decodePoolConfig(v cty.Value) (poolConfig, providers.Diagnostics) {
	var diags providers.Diagnostics
	var pc poolConfig
	var d providers.Diagnostics

	pc.NGPULayers, d = intAttr(attr(v, "n_gpu_layers"), cty.GetAttrPath("n_gpu_layers"), "n_gpu_layers", 0, 1<<20,
		"A number above the model's layer count (such as 999) offloads every layer.")
	diags = append(diags, d...)
	pc.Threads, d = intAttr(attr(v, "threads"), cty.GetAttrPath("threads"), "threads", 1, 4096,
		"Leave it out to let llama-server choose.")
	diags = append(diags, d...)
	pc.Parallel, d = intAttr(attr(v, "parallel"), cty.GetAttrPath("parallel"), "parallel", 1, 4096,
		"It is the number of requests served at the same time.")
	diags = append(diags, d...)

	if ts := attr(v, "tensor_split"); !ts.IsNull() {
		switch {
		case !ts.IsWhollyKnown():
			diags = append(diags, unknownDiag(cty.GetAttrPath("tensor_split"), "tensor_split"))
		case !ts.CanIterateElements():
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("tensor_split"), "Incorrect Attribute Type",
				"tensor_split must be a list of numbers, not %s.", ts.Type().FriendlyName()))
		default:
			positive := false
			i := 0
			for it := ts.ElementIterator(); it.Next(); i++ {
				_, ev := it.Element()
				if ev.IsNull() || ev.Type() != cty.Number {
					diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("tensor_split").IndexInt(i),
						"Invalid Tensor Split", "tensor_split[%d] must be a number.", i))
					continue
				}
				f, _ := ev.AsBigFloat().Float64()
				if f < 0 {
					diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("tensor_split").IndexInt(i),
						"Invalid Tensor Split", "tensor_split[%d] = %s is negative; each entry is a GPU's share of the model, 0 or more.",
						i, ev.AsBigFloat().Text('f', -1)))
				}
				if f > 0 {
					positive = true
				}
				pc.TensorSplit = append(pc.TensorSplit, f)
			}
			if i == 0 || !positive {
				diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("tensor_split"), "Invalid Tensor Split",
					"tensor_split needs at least one share above 0, one per GPU in the order of devices, e.g. [3, 1]."))
			}
		}
	}

	key, d := stringAttr(attr(v, "api_key"), cty.GetAttrPath("api_key"), "api_key")
	diags = append(diags, d...)
	if key != nil {
		if *key == "" {
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("api_key"), "Empty API Key",
				"api_key is empty, which would leave the engine open; set a key or leave api_key out."))
		} else {
			pc.APIKey = key
		}
	}
	return pc, diags
}
