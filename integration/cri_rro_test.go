package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIRecursiveReadOnly: CRI learns from the fre handler's features
// that it has recursive read-only mounts (rro), so a volume kubelet asks
// for read-only recursively is, submounts included; one with propagation
// other than private is refused, as CRI refuses it for runc.
func TestCRIRecursiveReadOnly(t *testing.T) {
	c := setup(t)
	rs, ctx := c.criSession(t, "fre-rro")

	st, err := rs.Status(ctx, &cri.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, h := range st.RuntimeHandlers {
		if h.Name == "fre" {
			found = true
			if !h.GetFeatures().GetRecursiveReadOnlyMounts() {
				t.Fatalf("CRI's fre handler: %v, want recursive read-only mounts", h.Features)
			}
		}
	}
	if !found {
		t.Fatalf("no fre handler in CRI's status: %v", st.RuntimeHandlers)
	}

	// The volume is a shared mount of its own (so that CRI takes a
	// propagation other than private up to its rro check) with a tmpfs
	// below it.
	vol := t.TempDir()
	if err := unix.Mount(vol, vol, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(vol, unix.MNT_DETACH) })
	if err := unix.Mount("", vol, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(vol, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })

	podCfg := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: "fre-rro", Uid: "fre-rro-uid", Namespace: "default"},
		LogDirectory: t.TempDir(),
		Linux:        &cri.LinuxPodSandboxConfig{CgroupParent: "/fre-rro/pod"},
	}
	podID := c.runPod(t, ctx, rs, podCfg)
	create := func(name string, prop cri.MountPropagation) (string, error) {
		r, err := rs.CreateContainer(ctx, &cri.CreateContainerRequest{
			PodSandboxId: podID,
			Config: &cri.ContainerConfig{
				Metadata: &cri.ContainerMetadata{Name: name},
				Image:    &cri.ImageSpec{Image: imageRef},
				Command:  []string{"sleep", "1000"},
				Mounts: []*cri.Mount{{ContainerPath: "/vol", HostPath: vol, Readonly: true, RecursiveReadOnly: true,
					Propagation: prop}},
				Linux: &cri.LinuxContainerConfig{},
			},
			SandboxConfig: podCfg,
		})
		return r.GetContainerId(), err
	}
	id, err := create("rro", cri.MountPropagation_PROPAGATION_PRIVATE)
	if err != nil {
		t.Fatalf("CreateContainer with a recursive read-only volume: %v", err)
	}
	if _, err := rs.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	for _, f := range []string{"/vol/a", "/vol/sub/b"} {
		ex, err := rs.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: id, Cmd: []string{"touch", f}, Timeout: 30})
		if err != nil {
			t.Fatalf("ExecSync: %v", err)
		}
		if ex.ExitCode == 0 || !strings.Contains(string(ex.Stderr), "Read-only file system") {
			t.Errorf("touch %s: exit %d, %q; want read-only", f, ex.ExitCode, ex.Stderr)
		}
	}
	if _, err := create("rro-shared", cri.MountPropagation_PROPAGATION_HOST_TO_CONTAINER); err == nil ||
		!strings.Contains(err.Error(), "private propagation") {
		t.Errorf("a recursive read-only volume with propagation: %v, want CRI's refusal", err)
	}
	if _, err := rs.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: id, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
}
