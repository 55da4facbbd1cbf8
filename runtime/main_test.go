package runtime

import (
	"os"
	"testing"

	"github.com/fre-runtime/fre/internal/testpools"
)

// The runtimes these tests open use pools of the test's, not the host's.
func TestMain(m *testing.M) { os.Exit(testpools.Run(m.Run)) }
