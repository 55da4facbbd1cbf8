package runtime

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// sendSeccompListener hands a seccomp notify fd (SCMP_ACT_NOTIFY) to the
// agent at the profile's listenerPath, as the spec says: one message of
// the container process state (JSON) with the fd in SCM_RIGHTS. The fd is
// closed here: the agent owns it from now on.
func sendSeccompListener(profile *specs.LinuxSeccomp, fd, pid int, state specs.State) error {
	defer unix.Close(fd)
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	if err := unix.Connect(sock, &unix.SockaddrUnix{Name: profile.ListenerPath}); err != nil {
		return fmt.Errorf("failed to connect with seccomp agent specified in the seccomp profile (%s): %w", profile.ListenerPath, err)
	}
	b, err := json.Marshal(&specs.ContainerProcessState{
		Version: specs.Version, Fds: []string{specs.SeccompFdName}, Pid: pid,
		Metadata: profile.ListenerMetadata, State: state,
	})
	if err != nil {
		return err
	}
	if err := unix.Sendmsg(sock, b, unix.UnixRights(fd), nil, 0); err != nil {
		return fmt.Errorf("seccomp listener %s: %w", profile.ListenerPath, err)
	}
	return nil
}
