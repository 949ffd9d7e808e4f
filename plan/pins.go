package plan

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/llorch/llorch/providers"
)

// LockFileName is the lock file the pins come from, as messages name it.
const LockFileName = ".llorch.lock.hcl"

// checkPins compares what the providers planned with the lock file's pins:
// an engine binary or model whose digest differs from its pin is an error
// (a warning with -lockfile=upgrade, which pins it anew), and so is, with
// -lockfile=readonly, an engine binary not pinned at all. Each engine and
// model is reported once, at the first pool that uses it.
func (pl *Planner) checkPins(desired []*Desired) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[[2]string]bool{} // {"engine"|"model", name}
	for _, d := range desired {
		if d.Planned == nil {
			continue
		}
		if sum := d.Planned.BinarySHA256; sum != "" && !seen[[2]string{"engine", d.Pool.Engine}] {
			seen[[2]string{"engine", d.Pool.Engine}] = true
			pin, ok := pl.Pins.Engine(d.Pool.Engine)
			subject := d.Pool.Range("engine").Ptr()
			switch {
			case ok && pin.SHA256 != sum && pl.LockMode == providers.LockUpgrade:
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Engine binary will be pinned anew",
					Detail: fmt.Sprintf("The %s engine binary of %s has sha256 %s; %s pins %s. -lockfile=upgrade pins the new one when apply runs it.",
						d.Pool.Engine, d.Addr, ShortDigest(sum), LockFileName, ShortDigest(pin.SHA256)),
					Subject: subject,
				})
			case ok && pin.SHA256 != sum:
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Engine binary differs from the lock file",
					Detail: fmt.Sprintf("The %s engine binary of %s has sha256 %s, but %s pins %s, so llorch neither plans with it nor runs it. If the new binary is the one you want, run llorch apply -lockfile=upgrade to pin it, and commit %s.",
						d.Pool.Engine, d.Addr, ShortDigest(sum), LockFileName, ShortDigest(pin.SHA256), LockFileName),
					Subject: subject,
				})
			case !ok && pl.LockMode == providers.LockReadonly:
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Engine binary not pinned",
					Detail: fmt.Sprintf("The %s engine binary of %s (sha256 %s) is not pinned in %s, and with -lockfile=readonly only pinned engine binaries run. Run llorch apply without -lockfile=readonly where the engines run to pin it, and commit %s.",
						d.Pool.Engine, d.Addr, ShortDigest(sum), LockFileName, LockFileName),
					Subject: subject,
				})
			}
		}
		m := d.Planned.Model
		if m == nil || m.SHA256 == "" || seen[[2]string{"model", d.Spec.Model.Ref}] {
			continue
		}
		seen[[2]string{"model", d.Spec.Model.Ref}] = true
		pin, ok := pl.Pins.Model(d.Spec.Model.Ref)
		if !ok || pin.SHA256 == strings.TrimPrefix(m.SHA256, "sha256:") {
			continue
		}
		diag := &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Model differs from the lock file",
			Detail: fmt.Sprintf("The model %s of %s has sha256 %s, but %s pins %s, so llorch does not serve it. If the new bytes are the ones you want, run llorch apply -lockfile=upgrade to pin them, and commit %s.",
				d.Spec.Model.Ref, d.Addr, ShortDigest(m.SHA256), LockFileName, ShortDigest(pin.SHA256), LockFileName),
			Subject: modelRange(d),
		}
		if pl.LockMode == providers.LockUpgrade {
			diag.Severity, diag.Summary = hcl.DiagWarning, "Model will be pinned anew"
			diag.Detail = fmt.Sprintf("The model %s of %s has sha256 %s; %s pins %s. -lockfile=upgrade pins the new bytes when apply serves them.",
				d.Spec.Model.Ref, d.Addr, ShortDigest(m.SHA256), LockFileName, ShortDigest(pin.SHA256))
		}
		diags = append(diags, diag)
	}
	return diags
}

func modelRange(d *Desired) *hcl.Range {
	if r, ok := d.Pool.AttrRanges["model.ref"]; ok {
		return &r
	}
	return d.Pool.Range("model").Ptr()
}
