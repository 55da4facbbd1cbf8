package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fre-runtime/fre/contract"
)

// Duration is a time.Duration that JSON gives as "1.5s" or in seconds.
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("a duration: %q or seconds", "1.5s")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// function is a deployed function and its instances.
type function struct {
	e    *Engine
	spec Function
	m    *fnMetrics

	mu       sync.Mutex
	idle     []*instance // most recently used last
	all      map[*instance]bool
	starting int
	waiters  []chan *instance // FIFO; a nil send means: try again
	closed   bool
	// prepared instances (made, not started), and whether a refill runs
	prepared  []*preparedInstance
	refilling bool
}

// preparedInstance is an instance made ahead of its start.
type preparedInstance struct {
	id, dir string
	created Created
}

func newFunction(e *Engine, f Function) *function {
	return &function{e: e, spec: f, m: newFnMetrics(), all: map[*instance]bool{}}
}

// instance is one running instance.
type instance struct {
	fn     *function
	id     string
	dir    string // the channel on the host
	sock   string
	client *http.Client
	task   Task

	// under fn.mu
	busy     bool
	dead     bool
	idleTill *time.Timer
}

// acquire gets an instance for one request: a warm one, a new one
// (cold), or the next one freed, within the queue's bounds.
func (f *function) acquire(ctx context.Context) (inst *instance, cold bool, err error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, false, ErrStopping
		}
		if n := len(f.idle); n > 0 {
			inst = f.idle[n-1]
			f.idle = f.idle[:n-1]
			inst.busy = true
			inst.idleTill.Stop()
			f.mu.Unlock()
			return inst, false, nil
		}
		if len(f.all)+f.starting < f.spec.MaxInstances {
			f.starting++
			f.mu.Unlock()
			inst, err := f.start(ctx)
			f.mu.Lock()
			f.starting--
			if err != nil {
				// A waiter may now start one itself.
				f.wakeOne()
				f.mu.Unlock()
				return nil, true, err
			}
			inst.busy = true
			f.all[inst] = true
			f.mu.Unlock()
			return inst, true, nil
		}
		if len(f.waiters) >= f.spec.Queue {
			f.mu.Unlock()
			return nil, false, fmt.Errorf("%w (%d instances, %d waiting)", ErrBusy, len(f.all), len(f.waiters))
		}
		ch := make(chan *instance, 1)
		f.waiters = append(f.waiters, ch)
		f.mu.Unlock()
		t := time.NewTimer(f.spec.QueueTimeout.D())
		select {
		case inst = <-ch:
			t.Stop()
			if inst != nil {
				return inst, false, nil
			}
			continue // an instance went away: room to start one
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
			err = fmt.Errorf("%w: waited %v", ErrQueueWait, f.spec.QueueTimeout.D())
		}
		f.mu.Lock()
		f.dropWaiter(ch)
		f.mu.Unlock()
		// Handed one as we gave up: give it back.
		select {
		case inst := <-ch:
			if inst != nil {
				f.release(inst)
			}
		default:
		}
		return nil, false, err
	}
}

func (f *function) dropWaiter(ch chan *instance) {
	for i, w := range f.waiters {
		if w == ch {
			f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
			return
		}
	}
}

// wakeOne tells the first waiter to try again (f.mu held).
func (f *function) wakeOne() {
	if len(f.waiters) > 0 {
		w := f.waiters[0]
		f.waiters = f.waiters[1:]
		w <- nil
	}
}

// release returns an instance after its request: to the next waiter, or
// to the idle list until its keep-alive ends.
func (f *function) release(inst *instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	inst.busy = false
	if inst.dead || f.closed {
		return
	}
	if len(f.waiters) > 0 {
		w := f.waiters[0]
		f.waiters = f.waiters[1:]
		inst.busy = true
		w <- inst
		return
	}
	f.idle = append(f.idle, inst)
	inst.idleTill.Reset(f.spec.KeepAlive.D())
}

// retire removes an instance (crashed, broken, idle too long) and stops
// it in the background.
func (f *function) retire(inst *instance, why string) {
	if !f.detach(inst, why) {
		return
	}
	f.e.wg.Add(1)
	go func() {
		defer f.e.wg.Done()
		inst.stop()
	}()
}

// detach takes an instance out of the function's books; false if it was
// out already.
func (f *function) detach(inst *instance, why string) bool {
	f.mu.Lock()
	if inst.dead {
		f.mu.Unlock()
		return false
	}
	inst.dead = true
	inst.idleTill.Stop()
	delete(f.all, inst)
	for i, x := range f.idle {
		if x == inst {
			f.idle = append(f.idle[:i], f.idle[i+1:]...)
			break
		}
	}
	// Room for a new instance: a waiter may start it.
	f.wakeOne()
	f.mu.Unlock()
	f.e.log.Info("instance stopped", "function", f.spec.Name, "instance", inst.id, "why", why)
	return true
}

// prepare makes an instance ahead of its start: its channel and its
// container.
func (f *function) prepare(ctx context.Context) (*preparedInstance, error) {
	id := f.e.instanceID(f.spec.Name)
	dir := filepath.Join(f.e.channelRoot(), id)
	if err := os.Mkdir(dir, 0o777); err != nil {
		return nil, fmt.Errorf("channel: %w", err)
	}
	os.Chmod(dir, 0o777) // the function's user, whoever it is, makes its socket
	tenantDir, err := f.e.tenantDir(f.spec.Tenant)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	created, err := f.e.backend.Create(ctx, &f.spec, id, []Bind{
		{Source: dir, Destination: contract.ChannelMount},
		{Source: tenantDir, Destination: f.spec.WorkDir},
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("create instance: %w", err)
	}
	return &preparedInstance{id: id, dir: dir, created: created}, nil
}

func (p *preparedInstance) remove() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.created.Remove(ctx)
	os.RemoveAll(p.dir)
}

// refill makes prepared instances, in the background, up to the
// function's Prepared.
func (f *function) refill() {
	f.mu.Lock()
	if f.refilling || f.closed || len(f.prepared) >= f.spec.Prepared {
		f.mu.Unlock()
		return
	}
	f.refilling = true
	f.mu.Unlock()
	f.e.wg.Add(1)
	go func() {
		defer f.e.wg.Done()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			p, err := f.prepare(ctx)
			cancel()
			f.mu.Lock()
			if err != nil || f.closed {
				f.refilling = false
				f.mu.Unlock()
				if err != nil {
					f.e.log.Warn("prepare an instance", "function", f.spec.Name, "err", err.Error())
				} else {
					p.remove()
				}
				return
			}
			f.prepared = append(f.prepared, p)
			if len(f.prepared) >= f.spec.Prepared {
				f.refilling = false
				f.mu.Unlock()
				return
			}
			f.mu.Unlock()
		}
	}()
}

// start starts an instance (a prepared one when there is one) and waits
// until it listens on its socket.
func (f *function) start(ctx context.Context) (*instance, error) {
	t0 := time.Now()
	f.mu.Lock()
	var p *preparedInstance
	if n := len(f.prepared); n > 0 {
		p = f.prepared[0]
		f.prepared = f.prepared[1:]
	}
	f.mu.Unlock()
	if p == nil {
		var err error
		if p, err = f.prepare(ctx); err != nil {
			return nil, err
		}
	} else {
		f.m.preparedStart()
	}
	defer f.refill()
	inst := &instance{fn: f, id: p.id, dir: p.dir, sock: filepath.Join(p.dir, contract.Socket)}
	inst.client = UnixClient(inst.sock)
	inst.idleTill = time.AfterFunc(time.Hour, func() { f.retire(inst, "idle") })
	inst.idleTill.Stop()
	task, err := p.created.Start(ctx)
	if err != nil {
		os.RemoveAll(p.dir)
		return nil, fmt.Errorf("start instance: %w", err)
	}
	inst.task = task
	t1 := time.Now()
	if err := inst.waitReady(ctx, f.spec.ReadyTimeout.D()); err != nil {
		inst.stop()
		return nil, err
	}
	if tr := f.e.cfg.Trace; tr != nil {
		tr("ready", time.Since(t1))
	}
	f.m.coldStart(time.Since(t0))
	f.e.log.Debug("instance ready", "function", f.spec.Name, "instance", inst.id, "ms", float64(time.Since(t0).Microseconds())/1000)
	f.e.wg.Add(1)
	go func() {
		defer f.e.wg.Done()
		select {
		case <-task.Exited():
			f.retire(inst, fmt.Sprintf("exited with status %d", task.Status()))
		case <-f.e.close:
		}
	}()
	return inst, nil
}

// waitReady polls the socket until it accepts, the process exits or the
// deadline passes. The poll is every 0.1 ms at first and at most every
// 1 ms: a cold start is tens of ms, and a refused connect costs some µs.
func (inst *instance) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	wait := 100 * time.Microsecond
	for {
		c, err := net.DialTimeout("unix", inst.sock, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-inst.task.Exited():
			return fmt.Errorf("%w before it listened on %s (status %d)", ErrCrashed, contract.ChannelMount+"/"+contract.Socket, inst.task.Status())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: nothing listened on %s within %v", ErrNotReady, contract.ChannelMount+"/"+contract.Socket, timeout)
		}
		time.Sleep(wait)
		wait = min(wait*3/2, time.Millisecond)
	}
}

// stop kills the instance and removes it and its channel.
func (inst *instance) stop() {
	inst.client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if inst.task != nil {
		if err := inst.task.Stop(ctx); err != nil {
			inst.fn.e.log.Warn("stop instance", "instance", inst.id, "err", err.Error())
		}
	}
	os.RemoveAll(inst.dir)
}

// scale starts instances up to n (idle ones, ready for requests) and
// stops idle ones beyond n.
func (f *function) scale(ctx context.Context, n int) error {
	if n < 0 || n > f.spec.MaxInstances {
		return fmt.Errorf("%w: instances %d: from 0 to maxInstances (%d)", ErrBadRequest, n, f.spec.MaxInstances)
	}
	f.mu.Lock()
	have := len(f.all) + f.starting
	var surplus []*instance
	for have > n && len(f.idle) > 0 {
		inst := f.idle[0]
		f.idle = f.idle[1:]
		inst.dead = true
		inst.idleTill.Stop()
		delete(f.all, inst)
		surplus = append(surplus, inst)
		have--
	}
	f.mu.Unlock()
	// Stopped before Scale returns: a scale to zero leaves nothing
	// running.
	var wg sync.WaitGroup
	for _, inst := range surplus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.e.log.Info("instance stopped", "function", f.spec.Name, "instance", inst.id, "why", "scaled down")
			inst.stop()
		}()
	}
	wg.Wait()
	errs := make([]error, n)
	for i := have; i < n; i++ {
		f.mu.Lock()
		f.starting++
		f.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst, err := f.start(ctx)
			f.mu.Lock()
			f.starting--
			if err == nil {
				f.all[inst] = true
				inst.busy = true
			}
			f.mu.Unlock()
			if err == nil {
				f.release(inst)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// shutdown stops every instance; waiting requests get ErrStopping.
func (f *function) shutdown(ctx context.Context) {
	f.mu.Lock()
	f.closed = true
	for _, w := range f.waiters {
		w <- nil
	}
	f.waiters = nil
	var all []*instance
	for inst := range f.all {
		all = append(all, inst)
	}
	prepared := f.prepared
	f.prepared = nil
	f.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range prepared {
		wg.Add(1)
		go func() { defer wg.Done(); p.remove() }()
	}
	for _, inst := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.mu.Lock()
			inst.dead = true
			inst.idleTill.Stop()
			delete(f.all, inst)
			f.mu.Unlock()
			inst.stop()
		}()
	}
	wg.Wait()
}

func (f *function) status() FunctionStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := FunctionStatus{Function: f.spec, Instances: len(f.all), Idle: len(f.idle), Starting: f.starting, Waiting: len(f.waiters)}
	s.Busy = s.Instances - s.Idle
	return s
}

// tenantDir makes (once) the tenant's workDir on the host.
func (e *Engine) tenantDir(tenant string) (string, error) {
	if err := contract.ValidName(tenant); err != nil {
		return "", err
	}
	root := e.cfg.TenantRoot
	// Only root passes the root: a tenant's directory is open to any
	// user of its instances, and to nobody else.
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("tenant root: %w", err)
	}
	dir := filepath.Join(root, tenant)
	if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("tenant %s: %w", tenant, err)
	} else if err == nil {
		os.Chmod(dir, 0o777)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("tenant %s: %s is not a directory", tenant, dir)
	}
	return dir, nil
}

// UnixClient is an HTTP client whose every connection goes to the Unix
// socket sock (an instance's channel, or fre serve's API), kept alive.
func UnixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}}
}
