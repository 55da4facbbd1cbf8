package runtime

import (
	"encoding/binary"
	"unsafe"
)

var ne = binary.NativeEndian

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
