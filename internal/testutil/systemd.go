package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// SystemdBusSocket is the system bus a systemd cgroup driver talks to.
const SystemdBusSocket = "/run/dbus/system_bus_socket"

// RequireSystemd skips t unless this is make test-systemd's layout: root,
// systemd as PID 1 with its system bus, cgroup v2 at /sys/fs/cgroup. With
// FRE_TEST_SYSTEMD=1 (that guest) it fails instead: there a missing
// systemd is a broken guest, which must not pass by skipping.
func RequireSystemd(t testing.TB) {
	t.Helper()
	requireSystemd(t, true)
}

// RequireSystemdAnyCgroup is RequireSystemd on either cgroup layout
// systemd boots: v2, or v1 (hybrid) with systemd.unified_cgroup_hierarchy=0.
func RequireSystemdAnyCgroup(t testing.TB) {
	t.Helper()
	requireSystemd(t, false)
}

// SystemdRunning: systemd is PID 1 with its system bus (make
// test-systemd's guest), whoever asks.
func SystemdRunning() bool {
	return whyNoSystemd() == ""
}

// whyNoSystemd says what is missing of systemd as PID 1 with its bus.
func whyNoSystemd() string {
	comm, _ := os.ReadFile("/proc/1/comm")
	if c := strings.TrimSpace(string(comm)); c != "systemd" {
		return "PID 1 is " + c + ", not systemd"
	}
	if _, err := os.Stat(SystemdBusSocket); err != nil {
		return "no system bus: " + err.Error()
	}
	return ""
}

func requireSystemd(t testing.TB, v2 bool) {
	t.Helper()
	var st unix.Statfs_t
	why := whyNoSystemd()
	switch {
	case os.Geteuid() != 0:
		why = "not root"
	case why == "" && v2 && (unix.Statfs("/sys/fs/cgroup", &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC):
		why = "/sys/fs/cgroup is not cgroup v2"
	}
	if why == "" {
		return
	}
	if os.Getenv("FRE_TEST_SYSTEMD") == "1" {
		t.Fatalf("FRE_TEST_SYSTEMD=1 but %s", why)
	}
	t.Skipf("needs systemd as PID 1 on cgroup v2 (make test-systemd runs it in a guest): %s", why)
}

// Sleeper starts `sleep 1000` (a process to put in a cgroup or a unit),
// killed and reaped at t's end.
func Sleeper(t testing.TB) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// SystemctlShow is `systemctl show UNIT -p PROPS...` as a map. A list
// property systemctl prints once per entry (DeviceAllow) is its entries
// joined by "; ".
func SystemctlShow(t testing.TB, unit string, props ...string) map[string]string {
	t.Helper()
	out, err := exec.Command("systemctl", "show", unit, "-p", strings.Join(props, ",")).CombinedOutput()
	if err != nil {
		t.Fatalf("systemctl show %s: %v: %s", unit, err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(l, "=")
		switch {
		case !ok:
		case m[k] != "":
			m[k] += "; " + v
		default:
			m[k] = v
		}
	}
	return m
}
