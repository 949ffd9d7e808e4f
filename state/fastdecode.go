package state

import "github.com/llorch/llorch/internal/jsonscan"

// decodeFast parses a state file without reflection: encoding/json spends
// most of a plan's state read on reflection and on validating the input
// in a separate pass, and a state of a thousand pools is megabytes.
//
// It understands exactly the files Encode writes and anything that means
// the same to encoding/json (other whitespace, members in another order,
// nulls, escaped strings). It gives up (ok false) on everything else: a
// syntax error, a value of another type, a member it does not know or that
// is given twice, a member name that differs only in case, invalid UTF-8,
// a number out of range, a format_version it does not read. Decode then
// falls back to encoding/json, which accepts or rejects the file and words
// the error. So whenever decodeFast succeeds, its State is the one
// encoding/json would have decoded; the fuzz test in fastdecode_test.go
// holds it to that.
func decodeFast(data []byte) (*State, bool) {
	var s State
	ok := jsonscan.Decode(data, func(js *jsonscan.Scanner) {
		d := &scanner{js}
		var seen jsonscan.Fields
		d.Object(func(key []byte) {
			switch string(key) {
			case "format_version":
				d.Once(&seen, 0)
				s.FormatVersion = d.Int()
			case "lineage":
				d.Once(&seen, 1)
				s.Lineage = d.Str()
			case "serial":
				d.Once(&seen, 2)
				s.Serial = d.Uint64()
			case "llorch_version":
				d.Once(&seen, 3)
				s.LlorchVersion = d.Str()
			case "pools":
				d.Once(&seen, 4)
				s.Pools = d.pools()
			default:
				d.Fail()
			}
		})
		if seen&1 == 0 || s.FormatVersion < 1 || s.FormatVersion > FormatVersion {
			d.Fail() // Decode words these
		}
	})
	if !ok {
		return nil, false
	}
	return &s, true
}

// scanner adds the state file's own types to jsonscan's.
type scanner struct{ *jsonscan.Scanner }

func (d *scanner) pools() map[string]*Pool {
	if d.Null() {
		return nil
	}
	out := map[string]*Pool{}
	d.MapMembers(func(addr string) { out[addr] = d.pool() })
	return out
}

func (d *scanner) pool() *Pool {
	if d.Null() {
		return nil
	}
	var p Pool
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "engine":
			d.Once(&seen, 0)
			p.Engine = d.Str()
		case "spec_hash":
			d.Once(&seen, 1)
			p.SpecHash = d.Str()
		case "spec":
			d.Once(&seen, 2)
			p.Spec = d.spec()
		case "prepared":
			d.Once(&seen, 3)
			p.Prepared = d.prepared()
		case "replicas":
			d.Once(&seen, 4)
			if d.Array(func() { p.Replicas = append(p.Replicas, d.replica()) }) && p.Replicas == nil {
				p.Replicas = []*Replica{}
			}
		case "timings":
			d.Once(&seen, 5)
			p.Timings = d.timings()
		default:
			d.Fail()
		}
	})
	return &p
}

func (d *scanner) timings() *Timings {
	if d.Null() {
		return nil
	}
	var t Timings
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "starts_ms":
			d.Once(&seen, 0)
			t.StartsMS = d.Ints()
		case "stops_ms":
			d.Once(&seen, 1)
			t.StopsMS = d.Ints()
		default:
			d.Fail()
		}
	})
	return &t
}

func (d *scanner) spec() *Spec {
	if d.Null() {
		return nil
	}
	var s Spec
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "engine":
			d.Once(&seen, 0)
			s.Engine = d.Str()
		case "replicas":
			d.Once(&seen, 1)
			s.Replicas = d.Int()
		case "model":
			d.Once(&seen, 2)
			s.Model = d.modelSpec()
		case "host":
			d.Once(&seen, 3)
			s.Host = d.Str()
		case "port":
			d.Once(&seen, 4)
			s.Port = d.Int()
		case "devices":
			d.Once(&seen, 5)
			s.Devices = d.Ints()
		case "ctx":
			d.Once(&seen, 6)
			s.Ctx = d.Int()
		case "flags":
			d.Once(&seen, 7)
			s.Flags = d.Strings()
		case "env":
			d.Once(&seen, 8)
			s.Env = d.StringMap()
		case "labels":
			d.Once(&seen, 9)
			s.Labels = d.StringMap()
		case "health":
			d.Once(&seen, 10)
			s.Health = d.healthSpec()
		case "restart":
			d.Once(&seen, 11)
			s.Restart = d.restartSpec()
		case "drain":
			d.Once(&seen, 12)
			s.Drain = d.drainSpec()
		case "update":
			d.Once(&seen, 13)
			s.Update = d.updateSpec()
		case "provider":
			d.Once(&seen, 14)
			s.Provider = d.Raw()
		default:
			d.Fail()
		}
	})
	return &s
}

func (d *scanner) modelSpec() ModelSpec {
	var m ModelSpec
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "ref":
			d.Once(&seen, 0)
			m.Ref = d.Str()
		case "sha256":
			d.Once(&seen, 1)
			m.SHA256 = d.Str()
		default:
			d.Fail()
		}
	})
	return m
}

func (d *scanner) healthSpec() HealthSpec {
	var h HealthSpec
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "path":
			d.Once(&seen, 0)
			h.Path = d.Str()
		case "interval":
			d.Once(&seen, 1)
			h.Interval = d.Str()
		case "start_timeout":
			d.Once(&seen, 2)
			h.StartTimeout = d.Str()
		case "live_interval":
			d.Once(&seen, 3)
			h.LiveInterval = d.Str()
		case "failures":
			d.Once(&seen, 4)
			h.Failures = d.Int()
		case "smoke":
			d.Once(&seen, 5)
			h.Smoke = d.smokeSpec()
		default:
			d.Fail()
		}
	})
	return h
}

func (d *scanner) smokeSpec() *SmokeSpec {
	var s SmokeSpec
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "prompt":
			d.Once(&seen, 0)
			s.Prompt = d.Str()
		case "n_predict":
			d.Once(&seen, 1)
			s.NPredict = d.Int()
		case "expect":
			d.Once(&seen, 2)
			s.Expect = d.Str()
		case "timeout":
			d.Once(&seen, 3)
			s.Timeout = d.Str()
		default:
			d.Fail()
		}
	})
	return &s
}

func (d *scanner) restartSpec() RestartSpec {
	var r RestartSpec
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "policy":
			d.Once(&seen, 0)
			r.Policy = d.Str()
		case "initial_backoff":
			d.Once(&seen, 1)
			r.InitialBackoff = d.Str()
		case "max_backoff":
			d.Once(&seen, 2)
			r.MaxBackoff = d.Str()
		case "multiplier":
			d.Once(&seen, 3)
			r.Multiplier = d.Float64()
		case "jitter":
			d.Once(&seen, 4)
			r.Jitter = d.Float64()
		case "reset_after":
			d.Once(&seen, 5)
			r.ResetAfter = d.Str()
		case "max_failures":
			d.Once(&seen, 6)
			r.MaxFailures = d.Int()
		case "cooldown":
			d.Once(&seen, 7)
			r.Cooldown = d.Str()
		default:
			d.Fail()
		}
	})
	return r
}

func (d *scanner) drainSpec() DrainSpec {
	var s DrainSpec
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "deadline":
			d.Once(&seen, 0)
			s.Deadline = d.Str()
		case "kill_timeout":
			d.Once(&seen, 1)
			s.KillTimeout = d.Str()
		default:
			d.Fail()
		}
	})
	return s
}

func (d *scanner) updateSpec() UpdateSpec {
	var u UpdateSpec
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "strategy":
			d.Once(&seen, 0)
			u.Strategy = d.Str()
		default:
			d.Fail()
		}
	})
	return u
}

func (d *scanner) prepared() *Prepared {
	if d.Null() {
		return nil
	}
	var p Prepared
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "binary_path":
			d.Once(&seen, 0)
			p.BinaryPath = d.Str()
		case "args":
			d.Once(&seen, 1)
			p.Args = d.Strings()
		case "env":
			d.Once(&seen, 2)
			p.Env = d.StringMap()
		case "secret_env":
			d.Once(&seen, 3)
			p.SecretEnvHashes = d.StringMap()
		case "host":
			d.Once(&seen, 4)
			p.Host = d.Str()
		case "port":
			d.Once(&seen, 5)
			p.Port = d.Int()
		case "model_path":
			d.Once(&seen, 6)
			p.ModelPath = d.Str()
		case "model_sha256":
			d.Once(&seen, 7)
			p.ModelSHA256 = d.Str()
		case "engine_version":
			d.Once(&seen, 8)
			p.EngineVersion = d.Str()
		case "provisioning_mode":
			d.Once(&seen, 9)
			p.ProvisioningMode = d.Str()
		case "device_mask":
			d.Once(&seen, 10)
			p.DeviceMask = d.Str()
		case "health_path":
			d.Once(&seen, 11)
			p.HealthPath = d.Str()
		case "binary_size":
			d.Once(&seen, 12)
			p.BinarySize = d.Int64()
		case "binary_mtime":
			d.Once(&seen, 13)
			p.BinaryMtime = d.Time()
		case "model_size":
			d.Once(&seen, 14)
			p.ModelSize = d.Int64()
		case "model_mtime":
			d.Once(&seen, 15)
			p.ModelMtime = d.Time()
		case "binary_sha256":
			d.Once(&seen, 16)
			p.BinarySHA256 = d.Str()
		case "model_revision":
			d.Once(&seen, 17)
			p.ModelRevision = d.Str()
		default:
			d.Fail()
		}
	})
	return &p
}

func (d *scanner) replica() *Replica {
	if d.Null() {
		return nil
	}
	var r Replica
	var seen jsonscan.Fields
	d.Object(func(key []byte) {
		switch string(key) {
		case "id":
			d.Once(&seen, 0)
			r.ID = d.Str()
		case "port":
			d.Once(&seen, 1)
			r.Port = d.Int()
		case "pid":
			d.Once(&seen, 2)
			r.PID = d.Int()
		case "supervisor_pid":
			d.Once(&seen, 3)
			r.SupervisorPID = d.Int()
		case "status":
			d.Once(&seen, 4)
			r.Status = d.Str()
		case "run_dir":
			d.Once(&seen, 5)
			r.RunDir = d.Str()
		case "handoff":
			d.Once(&seen, 6)
			r.Handoff = d.Str()
		case "started_at":
			d.Once(&seen, 7)
			r.StartedAt = d.Time()
		case "ready_at":
			d.Once(&seen, 8)
			r.ReadyAt = d.Time()
		case "restarts":
			d.Once(&seen, 9)
			r.Restarts = d.Int()
		case "last_error":
			d.Once(&seen, 10)
			r.LastError = d.Str()
		case "generation":
			d.Once(&seen, 11)
			r.Generation = d.Int()
		case "successor_run_dir":
			d.Once(&seen, 12)
			r.SuccessorRunDir = d.Str()
		case "successor_port":
			d.Once(&seen, 13)
			r.SuccessorPort = d.Int()
		case "successor_generation":
			d.Once(&seen, 14)
			r.SuccessorGeneration = d.Int()
		default:
			d.Fail()
		}
	})
	return &r
}
