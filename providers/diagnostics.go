package providers

import (
	"fmt"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// Severity of a Diagnostic.
type Severity int

const (
	Error Severity = iota
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Diagnostic is a provider's report about a problem. It speaks in attribute
// paths; core maps Attribute to a source range in the pool's block, so
// providers never see files.
type Diagnostic struct {
	Severity Severity
	Summary  string
	Detail   string
	// Attribute is the path in the pool's provider block (or, for pool-level
	// attributes, cty.GetAttrPath("model").GetAttr("ref") and the like, which
	// core resolves against the pool block). Empty: about the whole pool.
	Attribute cty.Path
}

// SummaryNoResponse is the Summary of the diagnostic a plugin client
// returns when the provider process stopped answering mid-call (usually a
// crash). The next call starts a fresh process, so a caller may retry.
const SummaryNoResponse = "Plugin did not respond"

// ProviderGone reports whether ds says the provider process went away.
func (ds Diagnostics) ProviderGone() bool {
	for _, d := range ds {
		if d.Severity == Error && d.Summary == SummaryNoResponse {
			return true
		}
	}
	return false
}

// Diagnostics is a list of Diagnostic; it implements error for convenience.
type Diagnostics []Diagnostic

// Errorf builds an error Diagnostic about the whole pool.
func Errorf(summary, detailFormat string, args ...any) Diagnostic {
	return Diagnostic{Severity: Error, Summary: summary, Detail: fmt.Sprintf(detailFormat, args...)}
}

// AttributeErrorf builds an error Diagnostic about one attribute.
func AttributeErrorf(path cty.Path, summary, detailFormat string, args ...any) Diagnostic {
	return Diagnostic{Severity: Error, Summary: summary, Detail: fmt.Sprintf(detailFormat, args...), Attribute: path}
}

// Warnf builds a warning Diagnostic about the whole pool.
func Warnf(summary, detailFormat string, args ...any) Diagnostic {
	return Diagnostic{Severity: Warning, Summary: summary, Detail: fmt.Sprintf(detailFormat, args...)}
}

// FromError wraps a Go error as an error Diagnostic with summary.
func FromError(summary string, err error) Diagnostics {
	if err == nil {
		return nil
	}
	return Diagnostics{{Severity: Error, Summary: summary, Detail: err.Error()}}
}

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

// Err returns ds as an error when it holds an error, else nil.
func (ds Diagnostics) Err() error {
	if ds.HasErrors() {
		return ds
	}
	return nil
}

func (ds Diagnostics) Error() string {
	var parts []string
	for _, d := range ds {
		if d.Severity != Error {
			continue
		}
		s := d.Summary
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
