package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// workerArg is the hidden first argument that makes this binary a worker.
const workerArg = "__crun-worker"

// request and response are the worker protocol: one JSON object per line on
// the worker's stdin and stdout.
type request struct {
	Op      string   // "run", "concurrent" or "execs"
	N       int      // execs
	Bundles []string // one for "run"
	IDs     []string
}

type response struct {
	Nanos  []int64
	Burst  burst
	Errs   []string
	Err    string
	Failed bool
}

// worker drives a runtime through a worker process living in a private mount
// namespace with cgroup2 on /sys/fs/cgroup (what crun needs on this host).
type worker struct {
	cmd *exec.Cmd
	in  *json.Encoder
	out *json.Decoder
	w   io.Closer
}

func newCgroup2Worker(path string, global []string) (*worker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// unshare -m makes mounts private, so the cgroup2 mount stays in the
	// worker's namespace and vanishes with it.
	args := append([]string{"-m", "sh", "-c",
		`mount -t cgroup2 none /sys/fs/cgroup && exec "$0" "$@"`,
		self, workerArg, path}, global...)
	cmd := exec.Command("unshare", args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	return &worker{cmd: cmd, in: json.NewEncoder(stdin), out: json.NewDecoder(bufio.NewReader(stdout)), w: stdin}, nil
}

func (w *worker) call(req request) (*response, error) {
	if err := w.in.Encode(req); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	var resp response
	if err := w.out.Decode(&resp); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if resp.Failed {
		return &resp, errors.New(resp.Err)
	}
	return &resp, nil
}

func (w *worker) run(bundle, id string) (time.Duration, error) {
	resp, err := w.call(request{Op: "run", Bundles: []string{bundle}, IDs: []string{id}})
	if resp == nil || len(resp.Nanos) == 0 {
		return 0, err
	}
	return time.Duration(resp.Nanos[0]), err
}

func (w *worker) concurrent(bundles, ids []string) (burst, error) {
	resp, err := w.call(request{Op: "concurrent", Bundles: bundles, IDs: ids})
	if err != nil {
		return burst{}, err
	}
	return resp.Burst, nil
}

func (w *worker) execs(bundle, id string, n int) ([]time.Duration, error) {
	resp, err := w.call(request{Op: "execs", Bundles: []string{bundle}, IDs: []string{id}, N: n})
	if resp == nil {
		return nil, err
	}
	lat := make([]time.Duration, len(resp.Nanos))
	for i, n := range resp.Nanos {
		lat[i] = time.Duration(n)
	}
	return lat, err
}

func (w *worker) close() error {
	w.w.Close()
	return w.cmd.Wait()
}

// workerMain serves requests with a local runner: args are the runtime's
// path and global flags.
func workerMain(args []string) int {
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "frebench worker: no runtime given")
		return 2
	}
	l := &local{path: args[0], global: args[1:]}
	dec := json.NewDecoder(bufio.NewReader(os.Stdin))
	enc := json.NewEncoder(os.Stdout)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if err == io.EOF {
				return 0
			}
			fmt.Fprintln(os.Stderr, "frebench worker:", err)
			return 1
		}
		var resp response
		switch req.Op {
		case "run":
			d, err := l.run(req.Bundles[0], req.IDs[0])
			resp.Nanos = []int64{int64(d)}
			if err != nil {
				resp.Failed, resp.Err = true, err.Error()
			}
		case "concurrent":
			b, err := l.concurrent(req.Bundles, req.IDs)
			resp.Burst = b
			if err != nil {
				resp.Failed, resp.Err = true, err.Error()
			}
		case "execs":
			lat, err := l.execs(req.Bundles[0], req.IDs[0], req.N)
			for _, d := range lat {
				resp.Nanos = append(resp.Nanos, int64(d))
			}
			if err != nil {
				resp.Failed, resp.Err = true, err.Error()
			}
		default:
			resp.Failed, resp.Err = true, "unknown op "+req.Op
		}
		if err := enc.Encode(resp); err != nil {
			return 1
		}
	}
}
