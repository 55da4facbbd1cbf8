package runtime

import (
	"fmt"
	"os"
	"strings"

	"github.com/opencontainers/selinux/go-selinux"

	"github.com/fre-runtime/fre/runtime/spawn"
)

// Linux security modules: the process's AppArmor profile and SELinux
// label take effect at its exec, through /proc/self/attr; the child
// writes them just before exec'ing fre-dmz, whose exec of the program
// keeps them.

func selinuxEnabled() bool { return selinux.GetEnabled() }

// apparmorEnabled: as runc decides (AppArmor's securityfs is there and
// the module says it is on), and the process has AppArmor's attr files.
func apparmorEnabled() bool {
	if _, err := os.Stat("/sys/kernel/security/apparmor"); err != nil {
		return false
	}
	if _, err := os.Stat("/proc/self/attr/apparmor"); err != nil {
		return false
	}
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(b), "Y")
}

// setLSM adds the attr writes for proc to the plan. An AppArmor profile
// on a host without AppArmor is an error (as with runc); an SELinux label
// on a host without SELinux is ignored (as with runc).
func setLSM(sc *spawn.Config, proc *ProcessConfig) error {
	if p := proc.ApparmorProfile; p != "" {
		if !apparmorEnabled() {
			return fmt.Errorf("%w: process.apparmorProfile %q: AppArmor is not enabled on this host", ErrInvalidConfig, p)
		}
		path := "/proc/self/attr/apparmor/exec"
		if _, err := os.Stat(path); err != nil {
			path = "/proc/self/attr/exec"
		}
		sc.AttrWrites = append(sc.AttrWrites, [2]string{path, "exec " + p})
	}
	if l := proc.SelinuxLabel; l != "" && selinux.GetEnabled() {
		sc.AttrWrites = append(sc.AttrWrites, [2]string{"/proc/self/attr/exec", l})
	}
	return nil
}
