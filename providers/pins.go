package providers

// Pins are what the lock file pins besides plugins: the engine binary each
// provider runs and the bytes each model ref stands for. Plan and apply
// refuse an engine or model whose digest differs from its pin, and no
// engine binary runs while planning unless it is pinned.
type Pins struct {
	Engines map[string]EnginePin // by provider name
	Models  map[string]ModelPin  // by model ref, as configured
}

// EnginePin is one engine binary as pinned.
type EnginePin struct {
	SHA256  string // hex digest of the binary
	Version string // engine version it reported, "" when not known
}

// ModelPin is one model as pinned.
type ModelPin struct {
	SHA256 string // hex digest of the model file
	Size   int64
	// Revision is the commit an hf: ref resolved to, "" when unknown.
	Revision string
}

// Engine returns the pin of provider name's engine.
func (p *Pins) Engine(name string) (EnginePin, bool) {
	if p == nil {
		return EnginePin{}, false
	}
	e, ok := p.Engines[name]
	return e, ok
}

// Model returns the pin of model ref.
func (p *Pins) Model(ref string) (ModelPin, bool) {
	if p == nil {
		return ModelPin{}, false
	}
	m, ok := p.Models[ref]
	return m, ok
}

// LockMode says what plan and apply do with an engine or model that the
// lock file does not pin as planned (`-lockfile=MODE`).
type LockMode string

const (
	// LockPin (the default) pins what is new and refuses what changed.
	LockPin LockMode = ""
	// LockReadonly never writes the lock file: it refuses what changed
	// and an engine binary not pinned (so nothing runs that a reviewer
	// did not pin); a model not pinned yet is a warning.
	LockReadonly LockMode = "readonly"
	// LockUpgrade pins what is new or changed.
	LockUpgrade LockMode = "upgrade"
)

// Merge records found (what now runs) in p as mode allows: a new engine or
// model is pinned unless mode is LockReadonly, a changed one only with
// LockUpgrade. It returns what it pinned, one phrase each, sorted.
func (p *Pins) Merge(found Pins, mode LockMode) []string {
	if mode == LockReadonly {
		return nil
	}
	var pinned []string
	for _, name := range SortedKeys(found.Engines) {
		e := found.Engines[name]
		old, ok := p.Engines[name]
		if ok && (old.SHA256 != e.SHA256 && mode != LockUpgrade || old == e) {
			continue
		}
		if p.Engines == nil {
			p.Engines = map[string]EnginePin{}
		}
		p.Engines[name] = e
		what := "engine " + name + " (sha256 " + short(e.SHA256)
		if e.Version != "" {
			what += ", " + e.Version
		}
		pinned = append(pinned, what+")")
	}
	for _, ref := range SortedKeys(found.Models) {
		m := found.Models[ref]
		old, ok := p.Models[ref]
		if ok && (old.SHA256 != m.SHA256 && mode != LockUpgrade || old == m) {
			continue
		}
		if p.Models == nil {
			p.Models = map[string]ModelPin{}
		}
		p.Models[ref] = m
		pinned = append(pinned, "model "+ref+" (sha256 "+short(m.SHA256)+")")
	}
	return pinned
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
