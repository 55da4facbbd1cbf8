package runtime

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/fre-runtime/fre/internal/defaultspec"
)

// DefaultSpec is the spec `fre-runc spec` writes: the same as runc's.
func DefaultSpec() *specs.Spec { return defaultspec.Runc() }
