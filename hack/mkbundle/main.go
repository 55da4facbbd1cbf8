// Command mkbundle writes the busybox inputs the shell scripts need, from
// internal/testutil: an OCI bundle (runc's default spec, terminal false) or
// an OCI image layout tar for `ctr images import`.
//
//	mkbundle bundle DIR [ARGS...]
//	mkbundle image TAR REF
package main

import (
	"fmt"
	"os"

	"github.com/fre-runtime/fre/internal/testutil"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkbundle:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: mkbundle bundle DIR [ARGS...] | mkbundle image TAR REF")
	}
	switch args[0] {
	case "bundle":
		return testutil.WriteBundle(args[1], args[2:]...)
	case "image":
		if len(args) != 3 {
			return fmt.Errorf("usage: mkbundle image TAR REF")
		}
		rootfs, err := os.MkdirTemp("", "fre-mkbundle-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(rootfs)
		if err := testutil.WriteBusyboxRootfs(rootfs); err != nil {
			return err
		}
		return testutil.WriteOCIImageLayoutTar(args[1], args[2], rootfs)
	}
	return fmt.Errorf("unknown mode %q", args[0])
}
