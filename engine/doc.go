// Package engine is FRE's function engine (research sections 4.1.3,
// 4.1.4 and 5): it turns HTTP invocations into function instances it
// starts and stops through containerd, with FRE's shim or any other
// runtime (runtime_type is a setting, so the same engine measures FRE
// against runc).
//
// A function is an image (built from a template by package fnimage, or
// any image in containerd) with a tenant. Each instance gets two writable
// things and nothing else: its tenant's persistent workDir, shared by the
// tenant's instances, and a channel: a directory of its own on the host,
// bound at /run/fre in the container, where the function listens on
// fn.sock. All invocations pass over that socket as HTTP/1.1, so a
// function needs no network namespace and no port (two instances under
// the host netns policy never collide) and any language's HTTP server
// serves unchanged. The contract is docs/function-contract.md.
//
// Scheduling: a request takes an idle (warm) instance, else starts one
// (cold) while the function has fewer than MaxInstances, else waits in a
// bounded queue. An instance serves one request at a time; once idle for
// KeepAlive it is stopped (scale to zero). An instance that never listens
// within ReadyTimeout, exits, or breaks the protocol is removed and its
// request answered with a clear error; the others go on.
//
// Everything an engine makes carries its name (the containerd label
// dev.fre.engine, its state directory): a new engine of that name first
// removes whatever an earlier one, killed, left behind.
package engine
