package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fre-runtime/fre/internal/testutil"
)

const criNamespace = "k8s.io"

// criImages imports the pause and busybox images into CRI's namespace.
func (c *containerd) criImages(t *testing.T) {
	t.Helper()
	for _, tar := range []string{pauseImage(t, c.dir), testutil.OCIImageLayout(t, c.dir, imageRef)} {
		if out, err := c.ctrNS(criNamespace, "images", "import", tar); err != nil {
			t.Fatalf("import %s: %v: %s", tar, err, out)
		}
	}
}

// criRuntime is a CRI runtime client of c, as kubelet's; its connection
// closes after the test's later clean-ups (a pod's removal among them).
func (c *containerd) criRuntime(t *testing.T) cri.RuntimeServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+c.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cri.NewRuntimeServiceClient(conn)
}

// criSession starts a CRI test: c's images imported for CRI, a runtime
// client, a context bounded for the test, and at the end the removal of
// the test pods' cgroup tree cgroupRoot (what is left there fails it).
func (c *containerd) criSession(t *testing.T, cgroupRoot string) (cri.RuntimeServiceClient, context.Context) {
	t.Helper()
	c.criImages(t)
	t.Cleanup(func() {
		if leaks := testutil.RemoveCgroupTree(cgroupRoot); len(leaks) > 0 {
			t.Errorf("left behind: %s", strings.Join(leaks, "; "))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c.criRuntime(t), ctx
}

// runPod runs a pod of podCfg with the fre handler; the clean-up stops and
// removes it and waits for its shim to go.
func (c *containerd) runPod(t *testing.T, ctx context.Context, rs cri.RuntimeServiceClient, podCfg *cri.PodSandboxConfig) string {
	t.Helper()
	pod, err := rs.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: podCfg, RuntimeHandler: "fre"})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		if _, err := rs.StopPodSandbox(context.Background(), &cri.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			t.Errorf("StopPodSandbox: %v", err)
		}
		if _, err := rs.RemovePodSandbox(context.Background(), &cri.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
		if !pollFor(20*time.Second, func() bool { return len(c.shimPids()) == 0 }) {
			t.Errorf("the pod's shim %v still runs", c.shimPids())
		}
	})
	return pod.PodSandboxId
}

// TestCRIPod acts as kubelet: a pod with runtime handler "fre", one
// container in it, exec, status, stats, then everything torn down.
func TestCRIPod(t *testing.T) {
	c := setup(t)
	c.criImages(t)
	t.Cleanup(func() {
		if leaks := testutil.RemoveCgroupTree("fre-k8s"); len(leaks) > 0 {
			t.Errorf("left behind: %s", strings.Join(leaks, "; "))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rs := c.criRuntime(t)

	logDir := filepath.Join(c.dir, "pod-logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	podCfg := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: "fre-pod", Uid: "fre-pod-uid", Namespace: "default"},
		Hostname:     "fre-pod",
		LogDirectory: logDir,
		Linux: &cri.LinuxPodSandboxConfig{
			CgroupParent: "/fre-k8s/pod-fre",
			SecurityContext: &cri.LinuxSandboxSecurityContext{
				NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_POD, Pid: cri.NamespaceMode_CONTAINER},
			},
		},
	}
	pod, err := rs.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: podCfg, RuntimeHandler: "fre"})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v\ncontainerd log:\n%s", err, c.tail())
	}
	podID := pod.PodSandboxId
	removed := false
	t.Cleanup(func() {
		if !removed {
			rs.StopPodSandbox(context.Background(), &cri.StopPodSandboxRequest{PodSandboxId: podID})
			rs.RemovePodSandbox(context.Background(), &cri.RemovePodSandboxRequest{PodSandboxId: podID})
		}
	})

	ctrResp, err := rs.CreateContainer(ctx, &cri.CreateContainerRequest{
		PodSandboxId: podID,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: "fre-sleeper"},
			Image:    &cri.ImageSpec{Image: imageRef},
			Command:  []string{"sh", "-c", "echo started; exec sleep 1000"},
			LogPath:  "sleeper.log",
			Linux:    &cri.LinuxContainerConfig{},
		},
		SandboxConfig: podCfg,
	})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	id := ctrResp.ContainerId
	if _, err := rs.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}

	ex, err := rs.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo hello; exit 4"}, Timeout: 30})
	if err != nil {
		t.Fatalf("ExecSync: %v", err)
	}
	if strings.TrimSpace(string(ex.Stdout)) != "hello" || ex.ExitCode != 4 {
		t.Fatalf("ExecSync: stdout %q exit %d, want hello, 4", ex.Stdout, ex.ExitCode)
	}

	// CRI's defaults (enable_unprivileged_ports/icmp) set two sysctls in
	// the sandbox, whose netns the container shares.
	ex, err = rs.ExecSync(ctx, &cri.ExecSyncRequest{ContainerId: id, Timeout: 30,
		Cmd: []string{"cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/net/ipv4/ping_group_range"}})
	if err != nil || ex.ExitCode != 0 {
		t.Fatalf("ExecSync cat sysctls: %v %v", err, ex)
	}
	if f := strings.Fields(string(ex.Stdout)); len(f) != 3 || f[0] != "0" || f[1] != "0" || f[2] != "2147483647" {
		t.Fatalf("pod sysctls: %q, want 0 and 0 2147483647", ex.Stdout)
	}

	st, err := rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	if st.Status.State != cri.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container state %s, want RUNNING", st.Status.State)
	}
	var info struct {
		Pid         int `json:"pid"`
		RuntimeSpec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string } `json:"namespaces"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid == 0 {
		t.Fatalf("ContainerStatus info: %v: %s", err, st.Info["info"])
	}
	checkPodNetns(t, info.Pid, info.RuntimeSpec.Linux.Namespaces)

	// Sandbox and container share one shim (grouped by sandbox ID).
	if n := len(c.shimPids()); n != 1 {
		t.Errorf("%d fre shims for one pod, want 1", n)
	}

	stats, err := rs.ContainerStats(ctx, &cri.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStats: %v", err)
	}
	if s := stats.Stats; s == nil || s.Memory == nil || s.Memory.WorkingSetBytes == nil || s.Cpu == nil {
		t.Fatalf("ContainerStats lacks memory or cpu: %v", stats)
	}

	if _, err := rs.StopContainer(ctx, &cri.StopContainerRequest{ContainerId: id, Timeout: 2}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	st, err = rs.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id})
	if err != nil || st.Status.State != cri.ContainerState_CONTAINER_EXITED {
		t.Fatalf("after stop: %v %v", err, st)
	}
	if b, err := os.ReadFile(filepath.Join(logDir, "sleeper.log")); err != nil || !strings.Contains(string(b), "started") {
		t.Errorf("container log: %v: %q", err, b)
	}
	if _, err := rs.RemoveContainer(ctx, &cri.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if _, err := rs.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := rs.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	removed = true
	waitFor(t, "the pod's shim to exit", 20*time.Second, func() (bool, error) {
		return len(c.shimPids()) == 0, nil
	})
}

// checkPodNetns checks that the container's network namespace is the
// pod's (the path CRI put in the spec), not the host's.
func checkPodNetns(t *testing.T, pid int, nss []struct{ Type, Path string }) {
	t.Helper()
	var path string
	for _, ns := range nss {
		if ns.Type == "network" {
			path = ns.Path
		}
	}
	if path == "" {
		t.Fatalf("the container spec has no network namespace path: %v", nss)
	}
	var want, got, host unix.Stat_t
	if err := unix.Stat(path, &want); err != nil {
		t.Fatalf("pod netns %s: %v", path, err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat("/proc/self/ns/net", &host); err != nil {
		t.Fatal(err)
	}
	if got.Ino != want.Ino || got.Dev != want.Dev {
		t.Fatalf("container netns %d, pod netns %s is %d", got.Ino, path, want.Ino)
	}
	if got.Ino == host.Ino {
		t.Fatalf("container is in the host's netns")
	}
}
