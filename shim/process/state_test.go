package process

import (
	"errors"
	"testing"

	"github.com/containerd/errdefs"
)

func TestStateTransitions(t *testing.T) {
	for _, tc := range []struct {
		s    State
		op   Op
		want error
	}{
		{Created, OpStart, nil},
		{Running, OpStart, errdefs.ErrFailedPrecondition},
		{Running, OpDelete, errdefs.ErrFailedPrecondition},
		{Stopped, OpDelete, nil},
		{Stopped, OpKill, errdefs.ErrNotFound},
		{Paused, OpResume, nil},
		{Running, OpResume, errdefs.ErrFailedPrecondition},
		{Deleted, OpDelete, errdefs.ErrFailedPrecondition},
		{State(0), OpStart, errdefs.ErrFailedPrecondition},
	} {
		err := tc.s.Check(tc.op, "x")
		if (tc.want == nil) != (err == nil) || (err != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s %s: got %v, want %v", tc.s, tc.op, err, tc.want)
		}
	}
}
