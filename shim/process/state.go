package process

import "fmt"

// State is a process's life-cycle state, as the shim tracks it. It is a
// type, not a string, and a transition that is not allowed is an error
// (ErrBadState), never a panic.
type State int

const (
	Created State = iota + 1
	Running
	Paused
	Stopped
	Deleted
)

func (s State) String() string {
	switch s {
	case Created:
		return "created"
	case Running:
		return "running"
	case Paused:
		return "paused"
	case Stopped:
		return "stopped"
	case Deleted:
		return "deleted"
	}
	return "unknown"
}

// Op is an operation on a process, for the transition table.
type Op int

const (
	OpStart Op = iota + 1
	OpPause
	OpResume
	OpKill
	OpExec
	OpDelete
	OpResize
	OpUpdate
)

var opNames = map[Op]string{OpStart: "start", OpPause: "pause", OpResume: "resume", OpKill: "kill",
	OpExec: "exec in", OpDelete: "delete", OpResize: "resize", OpUpdate: "update"}

func (o Op) String() string { return opNames[o] }

// allowed is the whole life-cycle, in one place.
var allowed = map[State]map[Op]bool{
	Created: {OpStart: true, OpKill: true, OpExec: true, OpDelete: true, OpResize: true, OpUpdate: true},
	Running: {OpPause: true, OpKill: true, OpExec: true, OpResize: true, OpUpdate: true},
	Paused:  {OpResume: true, OpKill: true, OpUpdate: true},
	Stopped: {OpDelete: true},
	Deleted: {},
}

// Allows reports whether op may be done in state s.
func (s State) Allows(op Op) bool { return allowed[s][op] }

// Check returns nil when op is allowed in s, else an error wrapping
// ErrBadState (or ErrExited for a kill after the exit).
func (s State) Check(op Op, id string) error {
	if s.Allows(op) {
		return nil
	}
	if op == OpKill && (s == Stopped || s == Deleted) {
		return fmt.Errorf("kill %s: %w", id, ErrExited)
	}
	return fmt.Errorf("cannot %s %s process %s: %w", op, s, id, ErrBadState)
}
