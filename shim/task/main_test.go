package task

import (
	"os"
	"testing"

	"github.com/fre-runtime/fre/internal/testpools"
)

// The shims these tests run use pools of the test's, not the host's.
func TestMain(m *testing.M) { os.Exit(testpools.Run(m.Run)) }
