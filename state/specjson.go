package state

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/llorch/llorch/internal/jsonscan"
)

// AppendJSON appends s's JSON to b: byte for byte what json.Marshal(s)
// gives (FuzzSpecAppendJSON holds it to that), which is what a spec hash
// is taken of. Every plan hashes every pool's spec, and encoding/json's
// reflection was most of that cost; values it would escape or format
// specially are still left to it.
func (s *Spec) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"engine":`...)
	b = appendJSONString(b, s.Engine)
	b = append(b, `,"replicas":`...)
	b = strconv.AppendInt(b, int64(s.Replicas), 10)
	b = append(b, `,"model":{"ref":`...)
	b = appendJSONString(b, s.Model.Ref)
	if s.Model.SHA256 != "" {
		b = append(b, `,"sha256":`...)
		b = appendJSONString(b, s.Model.SHA256)
	}
	b = append(b, `},"host":`...)
	b = appendJSONString(b, s.Host)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(s.Port), 10)
	b = append(b, `,"devices":`...)
	b = appendJSONList(b, s.Devices, appendJSONInt)
	b = append(b, `,"ctx":`...)
	b = strconv.AppendInt(b, int64(s.Ctx), 10)
	b = append(b, `,"flags":`...)
	b = appendJSONList(b, s.Flags, appendJSONString)
	b = append(b, `,"env":`...)
	b = appendJSONStringMap(b, s.Env)
	b = append(b, `,"labels":`...)
	b = appendJSONStringMap(b, s.Labels)

	h := &s.Health
	b = append(b, `,"health":{"path":`...)
	b = appendJSONString(b, h.Path)
	b = append(b, `,"interval":`...)
	b = appendJSONString(b, h.Interval)
	b = append(b, `,"start_timeout":`...)
	b = appendJSONString(b, h.StartTimeout)
	b = append(b, `,"live_interval":`...)
	b = appendJSONString(b, h.LiveInterval)
	b = append(b, `,"failures":`...)
	b = strconv.AppendInt(b, int64(h.Failures), 10)
	if sm := h.Smoke; sm != nil {
		b = append(b, `,"smoke":{"prompt":`...)
		b = appendJSONString(b, sm.Prompt)
		b = append(b, `,"n_predict":`...)
		b = strconv.AppendInt(b, int64(sm.NPredict), 10)
		if sm.Expect != "" {
			b = append(b, `,"expect":`...)
			b = appendJSONString(b, sm.Expect)
		}
		b = append(b, `,"timeout":`...)
		b = appendJSONString(b, sm.Timeout)
		b = append(b, '}')
	}

	r := &s.Restart
	b = append(b, `},"restart":{"policy":`...)
	b = appendJSONString(b, r.Policy)
	b = append(b, `,"initial_backoff":`...)
	b = appendJSONString(b, r.InitialBackoff)
	b = append(b, `,"max_backoff":`...)
	b = appendJSONString(b, r.MaxBackoff)
	b = append(b, `,"multiplier":`...)
	var err error
	if b, err = appendJSONFloat(b, r.Multiplier); err != nil {
		return nil, err
	}
	b = append(b, `,"jitter":`...)
	if b, err = appendJSONFloat(b, r.Jitter); err != nil {
		return nil, err
	}
	b = append(b, `,"reset_after":`...)
	b = appendJSONString(b, r.ResetAfter)
	b = append(b, `,"max_failures":`...)
	b = strconv.AppendInt(b, int64(r.MaxFailures), 10)
	b = append(b, `,"cooldown":`...)
	b = appendJSONString(b, r.Cooldown)

	b = append(b, `},"drain":{"deadline":`...)
	b = appendJSONString(b, s.Drain.Deadline)
	b = append(b, `,"kill_timeout":`...)
	b = appendJSONString(b, s.Drain.KillTimeout)
	b = append(b, `},"update":{"strategy":`...)
	b = appendJSONString(b, s.Update.Strategy)
	b = append(b, '}')
	if len(s.Provider) > 0 {
		b = append(b, `,"provider":`...)
		if b, err = appendRawJSON(b, s.Provider); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendRawJSON appends raw as encoding/json writes a RawMessage, which it
// checks and compacts, escaping as it does strings. raw as plan records
// it is already written that way: valid, without white space, printable
// ASCII without < > &; such raw is appended as it is, anything else goes
// through encoding/json.
func appendRawJSON(b []byte, raw json.RawMessage) ([]byte, error) {
	plain := true
	for _, c := range raw {
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			plain = false
			break
		}
	}
	if plain && jsonscan.Decode(raw, func(d *jsonscan.Scanner) { d.Skip() }) {
		return append(b, raw...), nil
	}
	p, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return append(b, p...), nil
}

// appendJSONString appends s as encoding/json writes it: printable ASCII
// other than what it escapes is written as it is, anything else by
// encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= utf8.RuneSelf, c == '"', c == '\\', c == '<', c == '>', c == '&':
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONList appends xs as a JSON array, null when nil.
func appendJSONList[T any](b []byte, xs []T, elem func([]byte, T) []byte) []byte {
	if xs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, x)
	}
	return append(b, ']')
}

func appendJSONInt(b []byte, n int) []byte { return strconv.AppendInt(b, int64(n), 10) }

// appendJSONStringMap appends m with its keys sorted, null when nil.
func appendJSONStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}

// appendJSONFloat appends f as encoding/json writes a float64: plain
// decimal between 1e-6 and 1e21 (and 0), anything else by encoding/json,
// which also refuses NaN and infinities.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if abs := math.Abs(f); abs == 0 || (abs >= 1e-6 && abs < 1e21) {
		return strconv.AppendFloat(b, f, 'f', -1, 64), nil
	}
	q, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	return append(b, q...), nil
}
