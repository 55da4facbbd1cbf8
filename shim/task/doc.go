// Package task is the shim's ttrpc Task service: containerd's task API on
// top of runtime/ (called in-process) and package process.
//
// Events go through one buffered channel and one forwarding goroutine, so
// they reach containerd in the order they were sent. Per container, the
// order containerd expects is kept under the container's lock: TaskCreate
// before any exit, TaskStart before the init's TaskExit, each exec's
// TaskExecStarted before its TaskExit, and the init's TaskExit only after
// every started exec's TaskExit.
package task
