package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIBidirectionalPropagation: a volume kubelet asks for with
// Bidirectional propagation (a privileged container; CRI makes it rshared
// and the container's root rshared) passes mounts both ways: one the host
// makes under the volume after the start appears in the container, and
// one the container makes appears on the host, as with runc.
func TestCRIBidirectionalPropagation(t *testing.T) {
	c := setup(t)
	rs, ctx := c.criSession(t, "fre-bidi")

	// The volume is a shared mount of its own: CRI refuses Bidirectional
	// on a source that is not shared.
	vol := t.TempDir()
	if err := unix.Mount(vol, vol, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(vol, unix.MNT_DETACH) })
	if err := unix.Mount("", vol, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	hostSub, ctrSub := filepath.Join(vol, "from-host"), filepath.Join(vol, "from-container")
	for _, d := range []string{hostSub, ctrSub} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// The container's mount, propagated here, and the host's own.
		for _, d := range []string{ctrSub, hostSub} {
			for unix.Unmount(d, unix.MNT_DETACH) == nil {
			}
		}
	})

	podCfg := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: "fre-bidi", Uid: "fre-bidi-uid", Namespace: "default"},
		LogDirectory: t.TempDir(),
		Linux: &cri.LinuxPodSandboxConfig{CgroupParent: "/fre-bidi/pod",
			SecurityContext: &cri.LinuxSandboxSecurityContext{Privileged: true}},
	}
	podID := c.runPod(t, ctx, rs, podCfg)
	r, err := rs.CreateContainer(ctx, &cri.CreateContainerRequest{
		PodSandboxId: podID,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: "bidi"},
			Image:    &cri.ImageSpec{Image: imageRef},
			Command:  []string{"sleep", "1000"},
			Mounts: []*cri.Mount{{ContainerPath: "/vol", HostPath: vol,
				Propagation: cri.MountPropagation_PROPAGATION_BIDIRECTIONAL}},
			Linux: &cri.LinuxContainerConfig{SecurityContext: &cri.LinuxContainerSecurityContext{Privileged: true}},
		},
		SandboxConfig: podCfg,
	})
	if err != nil {
		t.Fatalf("CreateContainer with a Bidirectional volume: %v", err)
	}
	id := r.ContainerId
	if _, err := rs.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	execIn := func(cmd ...string) (string, int32) {
		t.Helper()
		ex, err := rs.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
		if err != nil {
			t.Fatalf("ExecSync %v: %v", cmd, err)
		}
		return string(ex.Stdout) + string(ex.Stderr), ex.ExitCode
	}

	// Host to container: a tmpfs with a file, mounted after the start.
	if err := unix.Mount("tmpfs", hostSub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostSub, "mark"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := execIn("cat", "/vol/from-host/mark"); code != 0 || strings.TrimSpace(out) != "host" {
		t.Errorf("the host's mount in the container: exit %d, %q", code, out)
	}

	// Container to host.
	if out, code := execIn("sh", "-c", "mount -t tmpfs -o size=1m none /vol/from-container && echo ctr > /vol/from-container/mark"); code != 0 {
		t.Fatalf("mount in the container: exit %d, %q", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(ctrSub, "mark")); err != nil || strings.TrimSpace(string(b)) != "ctr" {
		t.Errorf("the container's mount on the host: %q, %v", b, err)
	}

	if _, err := rs.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
}
