// Package stage is what a provider needs to put a model on this machine:
// it parses a model ref (file:PATH, https://host/path/file,
// hf:ORG/REPO/FILE[@REV]), resolves a relative file: path against the
// configuration directory (ConfigureRequest.ConfigDir), and stages the
// model into a cache directory (ConfigureRequest.CacheDir, or one the
// provider block names).
//
// A download goes to FILE.partial next to its place in the cache and is
// renamed into place only when complete, verified and checked, so a
// reader never sees half a model. An interrupted download is resumed with
// an HTTP Range request by the next Stage; a stalled one is abandoned
// after StallTimeout. A flock on FILE.lock makes two processes (two
// applies) sharing the cache wait for each other instead of downloading
// the file twice, and dies with its holder. The sha256 is computed while
// the bytes arrive and compared with the expected digest; Digests
// remembers the digest of big local files by path, size and mtime so a
// multi-GB model is hashed once. Progress is reported as providers.Event
// values, ready for EnsureRequest.Progress.
//
//	st := &stage.Stager{CacheDir: req.CacheDir, UserAgent: "llorch-myengine/1",
//		Digests: stage.NewDigests(filepath.Join(req.CacheDir, "digests.json")),
//		Check:   func(ctx context.Context, path string) error { _, err := gguf.ReadFile(path); return err }}
//	ref, err := stage.ParseRef(pool.Model.Ref, configDir)
//	m, err := st.Stage(ctx, ref, pool.Model.SHA256, req.Progress)
//
// Errors a user fixes in the configuration are *Error values with a
// diagnostic summary and the field (ref or sha256) to point at; their text
// says what to do. The package knows no engine: what makes a file usable
// (GGUF for llama.cpp, see providers/sdk/gguf) is the provider's Check.
//
// Where this departs from the proposed layout: files are reached through
// the os package rather than afero, because flock, fsync and rename are
// the point here and afero's memory filesystem has none of them.
package stage
