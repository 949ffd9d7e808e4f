package plugin

import (
	"errors"
	"fmt"
	"sort"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/proto"
)

// This file translates between the Go API in package providers and the
// generated proto types. proto3 cannot tell an absent list or map from an
// empty one, so decoding returns nil for both; PoolSpec.Devices is the one
// place where the difference matters, and it travels in devices_set.

// encodeValue encodes v with its own type. cty.NilVal (no value) encodes
// as nil. Marks (sensitivity) are dropped: the value itself crosses intact
// and the schema says which attributes are sensitive.
func encodeValue(v cty.Value) (*proto.DynamicValue, error) {
	if v == cty.NilVal {
		return nil, nil
	}
	v, _ = v.UnmarkDeep()
	if !v.IsWhollyKnown() {
		return nil, errors.New("the value is not fully known")
	}
	ty := v.Type()
	tj, err := ctyjson.MarshalType(ty)
	if err != nil {
		return nil, fmt.Errorf("encoding type %s: %w", ty.FriendlyName(), err)
	}
	vj, err := ctyjson.Marshal(v, ty)
	if err != nil {
		return nil, fmt.Errorf("encoding %s value: %w", ty.FriendlyName(), err)
	}
	return &proto.DynamicValue{Json: vj, TypeJson: tj}, nil
}

// decodeValue is encodeValue's inverse; nil decodes as cty.NilVal.
func decodeValue(dv *proto.DynamicValue) (cty.Value, error) {
	if dv == nil {
		return cty.NilVal, nil
	}
	ty, err := ctyjson.UnmarshalType(dv.GetTypeJson())
	if err != nil {
		return cty.NilVal, fmt.Errorf("decoding value type: %w", err)
	}
	v, err := ctyjson.Unmarshal(dv.GetJson(), ty)
	if err != nil {
		return cty.NilVal, fmt.Errorf("decoding %s value: %w", ty.FriendlyName(), err)
	}
	return v, nil
}

func encodePath(p cty.Path) *proto.AttributePath {
	if len(p) == 0 {
		return nil
	}
	out := &proto.AttributePath{Steps: make([]*proto.AttributePath_Step, 0, len(p))}
	for _, step := range p {
		switch s := step.(type) {
		case cty.GetAttrStep:
			out.Steps = append(out.Steps, &proto.AttributePath_Step{
				Selector: &proto.AttributePath_Step_AttributeName{AttributeName: s.Name},
			})
		case cty.IndexStep:
			key, _ := s.Key.Unmark()
			switch {
			case !key.IsKnown() || key.IsNull():
				// Not addressable; the path stops at the collection.
				return out
			case key.Type() == cty.String:
				out.Steps = append(out.Steps, &proto.AttributePath_Step{
					Selector: &proto.AttributePath_Step_ElementKeyString{ElementKeyString: key.AsString()},
				})
			case key.Type() == cty.Number:
				i, _ := key.AsBigFloat().Int64()
				out.Steps = append(out.Steps, &proto.AttributePath_Step{
					Selector: &proto.AttributePath_Step_ElementKeyInt{ElementKeyInt: i},
				})
			default:
				return out
			}
		}
	}
	return out
}

func decodePath(p *proto.AttributePath) cty.Path {
	if len(p.GetSteps()) == 0 {
		return nil
	}
	out := make(cty.Path, 0, len(p.GetSteps()))
	for _, step := range p.GetSteps() {
		switch s := step.GetSelector().(type) {
		case *proto.AttributePath_Step_AttributeName:
			out = append(out, cty.GetAttrStep{Name: s.AttributeName})
		case *proto.AttributePath_Step_ElementKeyString:
			out = append(out, cty.IndexStep{Key: cty.StringVal(s.ElementKeyString)})
		case *proto.AttributePath_Step_ElementKeyInt:
			out = append(out, cty.IndexStep{Key: cty.NumberIntVal(s.ElementKeyInt)})
		}
	}
	return out
}

func encodePaths(ps []cty.Path) []*proto.AttributePath {
	if len(ps) == 0 {
		return nil
	}
	out := make([]*proto.AttributePath, len(ps))
	for i, p := range ps {
		out[i] = encodePath(p)
		if out[i] == nil {
			out[i] = &proto.AttributePath{}
		}
	}
	return out
}

func decodePaths(ps []*proto.AttributePath) []cty.Path {
	if len(ps) == 0 {
		return nil
	}
	out := make([]cty.Path, len(ps))
	for i, p := range ps {
		out[i] = decodePath(p)
	}
	return out
}

func encodeDiagnostics(ds providers.Diagnostics) []*proto.Diagnostic {
	if len(ds) == 0 {
		return nil
	}
	out := make([]*proto.Diagnostic, len(ds))
	for i, d := range ds {
		sev := proto.Diagnostic_SEVERITY_ERROR
		if d.Severity == providers.Warning {
			sev = proto.Diagnostic_SEVERITY_WARNING
		}
		out[i] = &proto.Diagnostic{
			Severity:  sev,
			Summary:   d.Summary,
			Detail:    d.Detail,
			Attribute: encodePath(d.Attribute),
		}
	}
	return out
}

func decodeDiagnostics(ds []*proto.Diagnostic) providers.Diagnostics {
	if len(ds) == 0 {
		return nil
	}
	out := make(providers.Diagnostics, len(ds))
	for i, d := range ds {
		// An unknown severity is treated as an error: a newer plugin must
		// not have its problems ignored.
		sev := providers.Error
		if d.GetSeverity() == proto.Diagnostic_SEVERITY_WARNING {
			sev = providers.Warning
		}
		out[i] = providers.Diagnostic{
			Severity:  sev,
			Summary:   d.GetSummary(),
			Detail:    d.GetDetail(),
			Attribute: decodePath(d.GetAttribute()),
		}
	}
	return out
}

func encodeSchema(s *providers.Schema) (*proto.Schema, error) {
	if s == nil {
		return nil, nil
	}
	pb, err := encodeBlock(s.Provider)
	if err != nil {
		return nil, fmt.Errorf("provider block: %w", err)
	}
	pool, err := encodeBlock(s.Pool)
	if err != nil {
		return nil, fmt.Errorf("pool block: %w", err)
	}
	return &proto.Schema{Version: s.Version, Provider: pb, Pool: pool}, nil
}

func decodeSchema(s *proto.Schema) (*providers.Schema, error) {
	if s == nil {
		return nil, nil
	}
	pb, err := decodeBlock(s.GetProvider())
	if err != nil {
		return nil, fmt.Errorf("provider block: %w", err)
	}
	pool, err := decodeBlock(s.GetPool())
	if err != nil {
		return nil, fmt.Errorf("pool block: %w", err)
	}
	return &providers.Schema{Version: s.GetVersion(), Provider: pb, Pool: pool}, nil
}

func encodeBlock(b *providers.Block) (*proto.Schema_Block, error) {
	if b == nil {
		return nil, nil
	}
	out := &proto.Schema_Block{Description: b.Description}
	for _, name := range b.AttributeNames() {
		a := b.Attributes[name]
		if a == nil {
			return nil, fmt.Errorf("attribute %q has no definition", name)
		}
		if a.Type == cty.NilType {
			return nil, fmt.Errorf("attribute %q has no type", name)
		}
		tj, err := ctyjson.MarshalType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: encoding type: %w", name, err)
		}
		out.Attributes = append(out.Attributes, &proto.Schema_Attribute{
			Name:              name,
			Type:              tj,
			Description:       a.Description,
			Required:          a.Required,
			Optional:          a.Optional,
			Sensitive:         a.Sensitive,
			ForcesReplacement: a.ForcesReplacement,
		})
	}
	names := make([]string, 0, len(b.Blocks))
	for n := range b.Blocks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		nb := b.Blocks[name]
		if nb == nil {
			return nil, fmt.Errorf("block %q has no definition", name)
		}
		inner, err := encodeBlock(&nb.Block)
		if err != nil {
			return nil, fmt.Errorf("block %q: %w", name, err)
		}
		var nesting proto.Schema_NestedBlock_Nesting
		switch nb.Nesting {
		case providers.NestingSingle:
			nesting = proto.Schema_NestedBlock_NESTING_SINGLE
		case providers.NestingList:
			nesting = proto.Schema_NestedBlock_NESTING_LIST
		default:
			return nil, fmt.Errorf("block %q has unknown nesting mode %d", name, nb.Nesting)
		}
		out.BlockTypes = append(out.BlockTypes, &proto.Schema_NestedBlock{
			TypeName:          name,
			Block:             inner,
			Nesting:           nesting,
			Required:          nb.Required,
			ForcesReplacement: nb.ForcesReplacement,
		})
	}
	return out, nil
}

func decodeBlock(b *proto.Schema_Block) (*providers.Block, error) {
	if b == nil {
		return nil, nil
	}
	out := &providers.Block{Description: b.GetDescription()}
	for _, a := range b.GetAttributes() {
		if a.GetName() == "" {
			return nil, errors.New("an attribute has no name")
		}
		ty, err := ctyjson.UnmarshalType(a.GetType())
		if err != nil {
			return nil, fmt.Errorf("attribute %q: decoding type: %w", a.GetName(), err)
		}
		if out.Attributes == nil {
			out.Attributes = make(map[string]*providers.Attribute, len(b.GetAttributes()))
		}
		out.Attributes[a.GetName()] = &providers.Attribute{
			Type:              ty,
			Required:          a.GetRequired(),
			Optional:          a.GetOptional(),
			Sensitive:         a.GetSensitive(),
			ForcesReplacement: a.GetForcesReplacement(),
			Description:       a.GetDescription(),
		}
	}
	for _, nb := range b.GetBlockTypes() {
		name := nb.GetTypeName()
		if name == "" {
			return nil, errors.New("a nested block has no type name")
		}
		var nesting providers.Nesting
		switch nb.GetNesting() {
		case proto.Schema_NestedBlock_NESTING_SINGLE:
			nesting = providers.NestingSingle
		case proto.Schema_NestedBlock_NESTING_LIST:
			nesting = providers.NestingList
		default:
			return nil, fmt.Errorf("block %q has unknown nesting mode %s", name, nb.GetNesting())
		}
		inner, err := decodeBlock(nb.GetBlock())
		if err != nil {
			return nil, fmt.Errorf("block %q: %w", name, err)
		}
		if inner == nil {
			inner = &providers.Block{}
		}
		if out.Blocks == nil {
			out.Blocks = make(map[string]*providers.NestedBlock, len(b.GetBlockTypes()))
		}
		out.Blocks[name] = &providers.NestedBlock{
			Block:             *inner,
			Nesting:           nesting,
			Required:          nb.GetRequired(),
			ForcesReplacement: nb.GetForcesReplacement(),
		}
	}
	return out, nil
}

func encodePool(p providers.PoolSpec) *proto.PoolSpec {
	out := &proto.PoolSpec{
		Addr:       p.Addr,
		Id:         p.ID,
		Model:      &proto.ModelRef{Ref: p.Model.Ref, Sha256: p.Model.SHA256},
		Host:       p.Host,
		Port:       int64(p.Port),
		DevicesSet: p.Devices != nil,
		Ctx:        int64(p.Ctx),
		Flags:      p.Flags,
		Env:        p.Env,
		Replicas:   int64(p.Replicas),
	}
	for _, d := range p.Devices {
		out.Devices = append(out.Devices, int64(d))
	}
	return out
}

func decodePool(p *proto.PoolSpec) providers.PoolSpec {
	out := providers.PoolSpec{
		Addr: p.GetAddr(),
		ID:   p.GetId(),
		Model: providers.ModelRef{
			Ref:    p.GetModel().GetRef(),
			SHA256: p.GetModel().GetSha256(),
		},
		Host:     p.GetHost(),
		Port:     int(p.GetPort()),
		Ctx:      int(p.GetCtx()),
		Flags:    nonEmpty(p.GetFlags()),
		Env:      nonEmptyMap(p.GetEnv()),
		Replicas: int(p.GetReplicas()),
	}
	if p.GetDevicesSet() {
		out.Devices = make([]int, len(p.GetDevices()))
		for i, d := range p.GetDevices() {
			out.Devices[i] = int(d)
		}
	}
	return out
}

func encodePrepared(pe *providers.PreparedEngine) *proto.PreparedEngine {
	if pe == nil {
		return nil
	}
	return &proto.PreparedEngine{
		BinaryPath:       pe.BinaryPath,
		Args:             pe.Args,
		Env:              pe.Env,
		SecretEnv:        pe.SecretEnv,
		ProbeToken:       pe.ProbeToken,
		Host:             pe.Host,
		Port:             int64(pe.Port),
		ModelPath:        pe.ModelPath,
		ModelSha256:      pe.ModelSHA256,
		EngineVersion:    pe.EngineVersion,
		ProvisioningMode: pe.ProvisioningMode,
		PoolId:           pe.PoolID,
		ReplicaId:        pe.ReplicaID,
		DeviceMask:       pe.DeviceMask,
		HealthPath:       pe.HealthPath,
		BinarySha256:     pe.BinarySHA256,
		Protocol:         encodeProtocol(pe.Protocol),
		ModelRevision:    pe.ModelRevision,
	}
}

func decodePrepared(pe *proto.PreparedEngine) *providers.PreparedEngine {
	if pe == nil {
		return nil
	}
	return &providers.PreparedEngine{
		BinaryPath:       pe.GetBinaryPath(),
		Args:             nonEmpty(pe.GetArgs()),
		Env:              nonEmptyMap(pe.GetEnv()),
		SecretEnv:        nonEmptyMap(pe.GetSecretEnv()),
		ProbeToken:       pe.GetProbeToken(),
		Host:             pe.GetHost(),
		Port:             int(pe.GetPort()),
		ModelPath:        pe.GetModelPath(),
		ModelSHA256:      pe.GetModelSha256(),
		EngineVersion:    pe.GetEngineVersion(),
		ProvisioningMode: pe.GetProvisioningMode(),
		PoolID:           pe.GetPoolId(),
		ReplicaID:        pe.GetReplicaId(),
		DeviceMask:       pe.GetDeviceMask(),
		HealthPath:       pe.GetHealthPath(),
		BinarySHA256:     pe.GetBinarySha256(),
		Protocol:         decodeProtocol(pe.GetProtocol()),
		ModelRevision:    pe.GetModelRevision(),
	}
}

func encodeProtocol(p *providers.EngineProtocol) *proto.EngineProtocol {
	if p == nil {
		return nil
	}
	out := &proto.EngineProtocol{
		Readiness: &proto.EngineProtocol_Readiness{Ready: int64s(p.Readiness.Ready), Loading: int64s(p.Readiness.Loading)},
		Stop:      &proto.EngineProtocol_Stop{Signal: p.Stop.Signal, RepeatForcesExit: p.Stop.RepeatForcesExit},
	}
	if id := p.Identity; id != nil {
		out.Identity = &proto.EngineProtocol_Identity{Path: id.Path, Field: id.Field, Expect: id.Expect}
	}
	for _, f := range p.InFlight {
		out.InFlight = append(out.InFlight, &proto.EngineProtocol_InFlight{Path: f.Path, CountTrue: f.CountTrue, Gauges: f.Gauges})
	}
	for _, c := range p.LogCauses {
		out.LogCauses = append(out.LogCauses, &proto.EngineProtocol_LogCause{Cause: c.Cause, Contains: c.Contains})
	}
	if c := p.Completion; c != nil {
		out.Completion = &proto.EngineProtocol_Completion{Path: c.Path, PromptField: c.PromptField,
			MaxTokensField: c.MaxTokensField, Fixed: c.Fixed, TextField: c.TextField}
	}
	return out
}

func decodeProtocol(p *proto.EngineProtocol) *providers.EngineProtocol {
	if p == nil {
		return nil
	}
	out := &providers.EngineProtocol{
		Readiness: providers.Readiness{Ready: ints(p.GetReadiness().GetReady()), Loading: ints(p.GetReadiness().GetLoading())},
		Stop:      providers.StopBehaviour{Signal: p.GetStop().GetSignal(), RepeatForcesExit: p.GetStop().GetRepeatForcesExit()},
	}
	if id := p.GetIdentity(); id != nil {
		out.Identity = &providers.IdentityProbe{Path: id.GetPath(), Field: id.GetField(), Expect: id.GetExpect()}
	}
	for _, f := range p.GetInFlight() {
		out.InFlight = append(out.InFlight, providers.InFlightProbe{Path: f.GetPath(), CountTrue: f.GetCountTrue(), Gauges: nonEmpty(f.GetGauges())})
	}
	for _, c := range p.GetLogCauses() {
		out.LogCauses = append(out.LogCauses, providers.LogCause{Cause: c.GetCause(), Contains: nonEmpty(c.GetContains())})
	}
	if c := p.GetCompletion(); c != nil {
		out.Completion = &providers.CompletionProbe{Path: c.GetPath(), PromptField: c.GetPromptField(),
			MaxTokensField: c.GetMaxTokensField(), Fixed: nonEmptyMap(c.GetFixed()), TextField: c.GetTextField()}
	}
	return out
}

func int64s(in []int) []int64 {
	if len(in) == 0 {
		return nil
	}
	out := make([]int64, len(in))
	for i, v := range in {
		out[i] = int64(v)
	}
	return out
}

func ints(in []int64) []int {
	if len(in) == 0 {
		return nil
	}
	out := make([]int, len(in))
	for i, v := range in {
		out[i] = int(v)
	}
	return out
}

func encodePlanned(pp *providers.PlannedPool) *proto.PlannedPool {
	if pp == nil {
		return nil
	}
	out := &proto.PlannedPool{
		EngineVersion:   pp.EngineVersion,
		RequiresReplace: encodePaths(pp.RequiresReplace),
		BinarySha256:    pp.BinarySHA256,
	}
	if m := pp.Model; m != nil {
		out.Model = &proto.ModelInfo{
			Path:          m.Path,
			SizeBytes:     m.SizeBytes,
			Architecture:  m.Architecture,
			Parameters:    m.Parameters,
			Quantization:  m.Quantization,
			ContextLength: int64(m.ContextLength),
			Sha256:        m.SHA256,
		}
	}
	out.Memory, out.MemoryUnknown = encodeMemory(pp.Memory), pp.MemoryUnknown
	return out
}

func encodeDeviceMemory(d providers.DeviceMemory) *proto.DeviceMemory {
	return &proto.DeviceMemory{Index: int64(d.Index), Weights: d.Weights, KvCache: d.KVCache, Compute: d.Compute, Other: d.Other}
}

func decodeDeviceMemory(d *proto.DeviceMemory) providers.DeviceMemory {
	return providers.DeviceMemory{Index: int(d.GetIndex()), Weights: d.GetWeights(), KVCache: d.GetKvCache(),
		Compute: d.GetCompute(), Other: d.GetOther()}
}

func encodeMemory(m *providers.MemoryEstimate) *proto.MemoryEstimate {
	if m == nil {
		return nil
	}
	in := m.Inputs
	out := &proto.MemoryEstimate{
		Host:       encodeDeviceMemory(m.Host),
		MappedFile: m.MappedFile,
		Inputs: &proto.MemoryInputs{
			Estimator: in.Estimator, Layers: int64(in.Layers), GpuLayers: int64(in.GPULayers), Ctx: int64(in.Ctx),
			Parallel: int64(in.Parallel), CacheTypeK: in.CacheTypeK, CacheTypeV: in.CacheTypeV, TensorSplit: in.TensorSplit,
			FlashAttention: in.FlashAttention, Mmap: in.Mmap, BatchSize: int64(in.BatchSize), UbatchSize: int64(in.UBatchSize),
		},
	}
	for _, g := range m.GPUs {
		out.Gpus = append(out.Gpus, encodeDeviceMemory(g))
	}
	return out
}

func decodeMemory(m *proto.MemoryEstimate) *providers.MemoryEstimate {
	if m == nil {
		return nil
	}
	in := m.GetInputs()
	out := &providers.MemoryEstimate{
		Host:       decodeDeviceMemory(m.GetHost()),
		MappedFile: m.GetMappedFile(),
		Inputs: providers.MemoryInputs{
			Estimator: in.GetEstimator(), Layers: int(in.GetLayers()), GPULayers: int(in.GetGpuLayers()), Ctx: int(in.GetCtx()),
			Parallel: int(in.GetParallel()), CacheTypeK: in.GetCacheTypeK(), CacheTypeV: in.GetCacheTypeV(),
			TensorSplit: in.GetTensorSplit(), FlashAttention: in.GetFlashAttention(), Mmap: in.GetMmap(),
			BatchSize: int(in.GetBatchSize()), UBatchSize: int(in.GetUbatchSize()),
		},
	}
	for _, g := range m.GetGpus() {
		out.GPUs = append(out.GPUs, decodeDeviceMemory(g))
	}
	return out
}

func decodePlanned(pp *proto.PlannedPool) *providers.PlannedPool {
	if pp == nil {
		return nil
	}
	out := &providers.PlannedPool{
		EngineVersion:   pp.GetEngineVersion(),
		RequiresReplace: decodePaths(pp.GetRequiresReplace()),
		BinarySHA256:    pp.GetBinarySha256(),
	}
	if m := pp.GetModel(); m != nil {
		out.Model = &providers.ModelInfo{
			Path:          m.GetPath(),
			SizeBytes:     m.GetSizeBytes(),
			Architecture:  m.GetArchitecture(),
			Parameters:    m.GetParameters(),
			Quantization:  m.GetQuantization(),
			ContextLength: int(m.GetContextLength()),
			SHA256:        m.GetSha256(),
		}
	}
	out.Memory, out.MemoryUnknown = decodeMemory(pp.GetMemory()), pp.GetMemoryUnknown()
	return out
}

func encodeEvent(ev providers.Event) *proto.Event {
	return &proto.Event{Stage: ev.Stage, Message: ev.Message, Current: ev.Current, Total: ev.Total}
}

func decodeEvent(ev *proto.Event) providers.Event {
	return providers.Event{Stage: ev.GetStage(), Message: ev.GetMessage(), Current: ev.GetCurrent(), Total: ev.GetTotal()}
}

func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func nonEmptyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}
