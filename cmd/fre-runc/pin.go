package main

// fre-runc lives for a few milliseconds, and on a VM the most expensive part
// of a Go process's start is its threads spreading over the CPUs: the first
// write to each fresh page then flushes the TLBs of the other CPUs with an
// IPI (a VM exit each), and GOMAXPROCS is sized for every CPU only to be
// cut back to one. So a C constructor, which runs before the Go runtime,
// pins the process to the CPU it was started on (the kernel balanced it at
// exec): the runtime then sees one CPU, and all of its threads stay there.
// What fre-runc starts gets the original CPUs back: the container's init
// in spawn's child, and hooks and ps through spawn.UnpinThread.
//
// FRE_NO_PIN=1 in the environment turns this off (for A/B measurement).
//
// The same constructor turns transparent huge pages off for fre-runc's own
// memory (prctl PR_SET_THP_DISABLE), before the Go runtime maps its heap.
// Where THP is "always" (Debian's kernels, and the v2 guest), the first
// touch of each 2 MiB of the heap, the stacks and the runtime's metadata
// made and zeroed a huge page: some three per fre-runc process for a few
// hundred KiB used, a tenth of a container's CPU in a burst of 256 in the
// guest (make bench-v2). What fre-runc execs gets the host's setting back
// (spawn.RestoreTHP). FRE_KEEP_THP=1 keeps THP on (for A/B measurement).

/*
#include <stdlib.h>

// Defined in runtime/spawn (spawn.c); weak, so cgo's own test link of this
// package, which lacks spawn, succeeds.
extern void fre_pin_start(void) __attribute__((weak));
extern void fre_thp_off(void) __attribute__((weak));

__attribute__((constructor)) static void fre_runc_pin(void)
{
	const char *off = getenv("FRE_NO_PIN");
	if ((off == NULL || *off == '\0') && fre_pin_start)
		fre_pin_start();
	const char *keep = getenv("FRE_KEEP_THP");
	if ((keep == NULL || *keep == '\0') && fre_thp_off)
		fre_thp_off();
}
*/
import "C"

// Linked for its constructor alone.
var _ = C.int(0)
