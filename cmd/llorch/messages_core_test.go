package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llorch/llorch/state"
)

func TestSentenceCapitalisesWordsButNotNames(t *testing.T) {
	tests := []struct{ in, want string }{
		{"cannot force-unlock: the state is not locked", "Cannot force-unlock: the state is not locked."},
		{"already a sentence.", "Already a sentence."},
		{"is it?", "Is it?"},
		{"main.llorch.hcl is not a llorch plan file", "main.llorch.hcl is not a llorch plan file."},
		{"pool.chat is not in the state", "pool.chat is not in the state."},
		{"-var needs a value", "-var needs a value."},
		{"/srv/models: permission denied", "/srv/models: permission denied."},
		{"état inconnu", "État inconnu."},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := sentence(errors.New(tc.in)); got != tc.want {
				t.Errorf("sentence(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestLockErrorNamesHolderOperationAndAge(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	full := state.LockInfo{
		ID: "3c9e4b1a-2d5f-4e6a-8b7c-9d0e1f2a3b4c", Operation: "apply", Who: "ann@build1", Host: "build1",
		PID: 4242, Version: "0.1.0", Created: created, Path: ".llorch/state.lock",
	}
	tests := []struct {
		name       string
		le         *state.LockError
		wantHolder string
		wantInfo   string
	}{
		{
			name:       "everything known",
			le:         &state.LockError{Info: full, Now: created.Add(95 * time.Second)},
			wantHolder: `ann@build1 (pid 4242) for "apply"`,
			wantInfo: "Lock Info:\n" +
				"  ID:      3c9e4b1a-2d5f-4e6a-8b7c-9d0e1f2a3b4c\n" +
				"  Path:    .llorch/state.lock\n" +
				"  Created: 2026-01-02 03:04:05 UTC (1m35s ago)\n" +
				"  Version: 0.1.0",
		},
		{
			name:       "no clock: no age",
			le:         &state.LockError{Info: full},
			wantHolder: `ann@build1 (pid 4242) for "apply"`,
			wantInfo: "Lock Info:\n" +
				"  ID:      3c9e4b1a-2d5f-4e6a-8b7c-9d0e1f2a3b4c\n" +
				"  Path:    .llorch/state.lock\n" +
				"  Created: 2026-01-02 03:04:05 UTC\n" +
				"  Version: 0.1.0",
		},
		{
			name:       "holder info unreadable",
			le:         &state.LockError{Info: state.LockInfo{}, Now: created, Err: errors.New("the lock file is empty; its holder may be starting")},
			wantHolder: "another llorch command",
			wantInfo:   "Lock Info:\n  Note:    the holder's lock info could not be read: the lock file is empty; its holder may be starting",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lockHolder(tc.le.Info); got != tc.wantHolder {
				t.Errorf("lockHolder = %q, want %q", got, tc.wantHolder)
			}
			if got := lockInfoText(tc.le); got != tc.wantInfo {
				t.Errorf("lockInfoText =\n%s\nwant\n%s", got, tc.wantInfo)
			}
		})
	}
}

// Flag values that cannot be parsed are explained by the flag that refused
// them, and unknown flags get the nearest known one.
func TestFlagRefusalsExplainThemselves(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantSummary string
		wantDetail  string
	}{
		{"bad duration", []string{"-lock-timeout=soon"}, "Invalid -lock-timeout option",
			"-lock-timeout=soon is not a duration: use a number and a unit, like -lock-timeout=30s or -lock-timeout=5m."},
		{"negative duration", []string{"-lock-timeout=-1s"}, "Invalid -lock-timeout option",
			"-lock-timeout=-1s is negative: use 0s not to wait, or a positive duration like -lock-timeout=30s."},
		{"-var without =", []string{"-var", "tier"}, "Invalid -var option",
			`Invalid -var "tier": expected name=value, like -var 'models=/srv/models'.`},
		{"-var without a name", []string{"-var", "=x"}, "Invalid -var option",
			`Invalid -var "=x": the variable name before "=" is empty.`},
		{"unknown flag near a known one", []string{"-lock-timout=1s"}, "Invalid command-line option",
			"Flag provided but not defined: -lock-timout. Did you mean -lock-timeout?"},
		{"unknown flag near none", []string{"-frobnicate"}, "Invalid command-line option",
			"Flag provided but not defined: -frobnicate."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			m := newMeta(strings.NewReader(""), &stdout, &stderr)
			fs := flagSet("plan")
			var vars varFlags
			vars.add(fs)
			var lf lockFlags
			lf.add(fs)
			if m.parseFlags(fs, tc.args) {
				t.Fatalf("parseFlags(%q) accepted the arguments", tc.args)
			}
			want := fmt.Sprintf("Error: %s\n\n%s\n\nRun \"llorch plan -help\" to see the options.\n\n", tc.wantSummary, tc.wantDetail)
			if stderr.String() != want {
				t.Errorf("stderr =\n%s\nwant\n%s", stderr.String(), want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

func TestFlagsKeepVarOrderAndDurations(t *testing.T) {
	m := newMeta(strings.NewReader(""), &strings.Builder{}, &strings.Builder{})
	fs := flagSet("plan")
	var vars varFlags
	vars.add(fs)
	var lf lockFlags
	lf.add(fs)
	if !m.parseFlags(fs, []string{"-var", "a=1", "-var-file=x.hcl", "-var", "b=c=d", "-lock-timeout=90s", "-lock=false"}) {
		t.Fatal("parseFlags refused good arguments")
	}
	got := fmt.Sprint(vars.args)
	if want := "[{a 1 } {  x.hcl} {b c=d }]"; got != want {
		t.Errorf("vars = %s, want %s", got, want)
	}
	if lf.timeout != 90*time.Second || lf.lock {
		t.Errorf("lock flags = %+v, want 90s and no lock", lf)
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	var stdout, stderr strings.Builder
	m := newMeta(strings.NewReader(""), &stdout, &stderr)
	fs := flagSet("plan")
	var lf lockFlags
	lf.add(fs)
	if m.parseFlags(fs, []string{"-help"}) {
		t.Fatal("parseFlags went on after -help")
	}
	if !m.helped || stderr.Len() != 0 || !strings.Contains(stdout.String(), "-lock-timeout value") {
		t.Errorf("helped=%v stdout=%q stderr=%q; want help on stdout only", m.helped, stdout.String(), stderr.String())
	}
}

func TestPoolLabelIsTheBlockLabel(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"pool.chat", "chat"},
		{`pool.embed["bge"]`, "embed"},
		{`pool.embed["a/b"]`, "embed"},
		{"pool.x[0]", "x"},
		{"not-an-address", "not-an-address"},
	}
	for _, tc := range tests {
		if got := poolLabel(tc.addr); got != tc.want {
			t.Errorf("poolLabel(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

func TestUnknownCommandsSuggestTheNearest(t *testing.T) {
	tests := []struct{ name, want string }{
		{"plna", ` Did you mean "plan"?`},
		{"aply", ` Did you mean "apply"?`},
		{"destory", ` Did you mean "destroy"?`},
		{"supervise2", ""}, // hidden commands are never offered
		{"frobnicate", ""},
	}
	for _, tc := range tests {
		if got := suggestCommand(tc.name); got != tc.want {
			t.Errorf("suggestCommand(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}
