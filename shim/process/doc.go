// Package process is the shim's view of one container's processes: the
// init and its execs, each with a typed state, its stdio and its exit.
//
// Every process is a direct child of the shim (runtime/ clones in-process),
// so its exit is read from its pidfd: no process is ever matched to an exit
// by pid, and a recycled pid cannot be mistaken for ours. Exits are waited
// for on the Go netpoller (a pidfd polls readable once the process has
// exited), so a waiting process costs no OS thread.
package process
