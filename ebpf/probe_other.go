//go:build !(linux && amd64)

package ebpf

// Probes are the loaded probes; on this platform Load always fails.
type Probes struct{}

// Load returns ErrUnsupported on this platform.
func Load(Options) (*Probes, error) { return nil, ErrUnsupported }

// Attach returns AttachAuto.
func (p *Probes) Attach() Attach { return AttachAuto }

// AddPID returns ErrUnsupported.
func (p *Probes) AddPID(int) error { return ErrUnsupported }

// RegisterFD returns ErrUnsupported.
func (p *Probes) RegisterFD(int, int, string) error { return ErrUnsupported }

// UnregisterFD returns ErrUnsupported.
func (p *Probes) UnregisterFD(int, int) error { return ErrUnsupported }

// SysVKind says which System V id space an id belongs to.
type SysVKind int

// The System V id spaces that carry traced calls.
const (
	SysVMsg SysVKind = 2
	SysVSem SysVKind = 3
)

// RegisterSysV returns ErrUnsupported.
func (p *Probes) RegisterSysV(SysVKind, int, string) error { return ErrUnsupported }

// Snapshot returns ErrUnsupported.
func (p *Probes) Snapshot() (*Report, error) { return nil, ErrUnsupported }

// Reset returns ErrUnsupported.
func (p *Probes) Reset() error { return ErrUnsupported }

// Close does nothing.
func (p *Probes) Close() error { return nil }

// MeasureCost returns ErrUnsupported.
func (p *Probes) MeasureCost(func() error) (ProbeCost, error) { return ProbeCost{}, ErrUnsupported }
