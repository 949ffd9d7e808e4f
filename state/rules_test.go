package state

import (
	"errors"
	"testing"
)

const (
	lineageA = "5b0d9a4e-1c2f-4e8a-9b7c-0d1e2f3a4b5c"
	lineageB = "0f0f0f0f-aaaa-4bbb-8ccc-dddddddddddd"
)

func at(lineage string, serial uint64, pid int) *State {
	s := New(lineage)
	s.Serial = serial
	if pid != 0 {
		s.Pools["pool.chat"] = &Pool{Engine: "llamacpp", Replicas: []*Replica{{ID: "r0", PID: pid}}}
	}
	return s
}

func TestNextSerial(t *testing.T) {
	tests := []struct {
		name    string
		stored  *Head
		writing *State
		want    uint64
		wantErr string
	}{
		{name: "first write", writing: at(lineageA, 0, 1), want: 1},
		{name: "store emptied since the read keeps the serial going", writing: at(lineageA, 5, 1), want: 6},
		{name: "read at the stored serial", stored: &Head{lineageA, 4}, writing: at(lineageA, 4, 1), want: 5},
		{
			name: "another lineage", stored: &Head{lineageA, 4}, writing: at(lineageB, 4, 1),
			wantErr: "refusing to write state with lineage " + lineageB + " over etcd, which holds a different state (lineage " + lineageA + "); was the state file replaced while llorch ran?",
		},
		{
			name: "written since the read", stored: &Head{lineageA, 6}, writing: at(lineageA, 4, 1),
			wantErr: "refusing to overwrite etcd: the state was read at serial 4, but serial 6 is stored now, so another llorch (one run with -lock=false, or one that lost its lock) wrote it in between",
		},
		{
			name: "read at a serial never stored", stored: &Head{lineageA, 3}, writing: at(lineageA, 9, 1),
			wantErr: "refusing to overwrite etcd: the state was read at serial 9, but serial 3 is stored now, so another llorch (one run with -lock=false, or one that lost its lock) wrote it in between",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NextSerial("etcd", tc.stored, tc.writing)
			switch {
			case tc.wantErr != "":
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("error = %v\nwant    %s", err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("error = %v", err)
			case got != tc.want:
				t.Errorf("serial = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestPushSerial(t *testing.T) {
	tests := []struct {
		name      string
		stored    *State
		in        *State
		force     bool
		want      uint64
		wantWrite bool
		wantKind  PushKind
		wantErr   string
	}{
		{name: "into nothing keeps the serial", in: at(lineageA, 7, 1), want: 7, wantWrite: true},
		{name: "a fresh state into nothing gets serial 1", in: at(lineageA, 0, 1), want: 1, wantWrite: true},
		{name: "over an empty state of another lineage", stored: at(lineageB, 9, 0), in: at(lineageA, 3, 1), want: 10, wantWrite: true},
		{name: "a newer serial", stored: at(lineageA, 4, 1), in: at(lineageA, 8, 2), want: 8, wantWrite: true},
		{name: "the stored state itself", stored: at(lineageA, 4, 1), in: at(lineageA, 4, 1), want: 4},
		{
			name: "another lineage", stored: at(lineageA, 4, 1), in: at(lineageB, 9, 1), wantKind: PushOtherLineage,
			wantErr: "cannot replace the state in etcd (lineage " + lineageA + ") with an unrelated state (lineage " + lineageB + "): they are two different registries",
		},
		{
			name: "an older serial", stored: at(lineageA, 4, 1), in: at(lineageA, 3, 1), wantKind: PushOlderSerial,
			wantErr: "cannot replace the state in etcd (serial 4) with an older one (serial 3)",
		},
		{
			name: "the same serial, other pools", stored: at(lineageA, 4, 1), in: at(lineageA, 4, 2), wantKind: PushSameSerial,
			wantErr: "cannot replace the state in etcd with a different state of the same serial (4)",
		},
		{name: "forced over another lineage", stored: at(lineageA, 4, 1), in: at(lineageB, 2, 1), force: true, want: 5, wantWrite: true},
		{name: "forced over a newer serial", stored: at(lineageA, 4, 1), in: at(lineageA, 3, 2), force: true, want: 5, wantWrite: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, write, err := PushSerial("etcd", tc.stored, tc.in, tc.force)
			if tc.wantErr != "" {
				var pe *PushError
				if !errors.As(err, &pe) || pe.Kind != tc.wantKind || err.Error() != tc.wantErr {
					t.Errorf("error = %v\nwant    %s (kind %d)", err, tc.wantErr, tc.wantKind)
				}
				return
			}
			if err != nil || got != tc.want || write != tc.wantWrite {
				t.Errorf("= %d, %v, %v; want %d, %v", got, write, err, tc.want, tc.wantWrite)
			}
		})
	}
}
