package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	sd "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// D-Bus names of systemd's manager.
const (
	busName       = "org.freedesktop.systemd1"
	managerPath   = godbus.ObjectPath("/org/freedesktop/systemd1")
	managerIface  = "org.freedesktop.systemd1.Manager"
	unitIface     = "org.freedesktop.systemd1.Unit"
	jobRemoved    = managerIface + ".JobRemoved"
	errUnitExists = "org.freedesktop.systemd1.UnitExists"
	errNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit"
	errNotLoaded  = "org.freedesktop.systemd1.LoadFailed"
)

// The sockets Connect tries: the system bus (DBUS_SYSTEM_BUS_ADDRESS
// when set), then, as root, systemd's own socket, as go-systemd's
// NewWithContext (runc's connection) does.
const (
	systemBusSocket = "/run/dbus/system_bus_socket"
	privateSocket   = "/run/systemd/private"
)

// defaultTimeout bounds a call whose context has no deadline: runc waits
// 30 s for a job.
const defaultTimeout = 30 * time.Second

// Conn is a connection to systemd's manager on the system bus.
//
// It is one D-Bus connection for both the method calls and the JobRemoved
// signals that say a job is done; go-systemd's Conn (what runc uses) dials
// two, each with its own authentication and Hello, and waits for its
// AddMatch on its own. Here the match is added while the Manager's
// Version is read (two calls in flight at once), so Connect is
// dial, auth, Hello and one round trip; StartScope is then one call and
// the wait for its job, and Stop the same plus one GetUnit per poll until
// the unit is gone. The JobRemoved match is set up once per Conn (no
// Manager.Subscribe, which would make systemd send every client all its
// signals): systemd sends a job's JobRemoved to the bus when the job's
// client is on it.
//
// Measured in the systemd 252 guest (hack/test-systemd.sh: qemu TCG, 2
// CPUs, so some 20-50 times a real machine's; TestCost, means of 20):
// Connect 19.6 ms (go-systemd's NewSystemConnection, without reading the
// version, 28.8 ms); StartScope with the job's wait 62 ms; Stop 334 ms,
// of which the stop job is 62 ms and the rest systemd unloading the unit
// and removing its cgroup. go-systemd's start right after a stop whose
// unit was not waited for took 312 ms: that work of systemd's is then
// paid by the next start instead. The runtime keeps one Conn per process
// (the shim's serves every container), so Connect is paid once.
//
// A Conn is safe for concurrent use. A connection that was closed under
// it (the bus restarted) is dialled again once per call, as runc does.
type Conn struct {
	mu      sync.Mutex
	b       *bus
	version int
}

// bus is one connection: its manager object and the jobs waiting for
// their JobRemoved.
type bus struct {
	conn    *godbus.Conn
	mgr     godbus.BusObject
	private bool // systemd's own socket: no bus daemon, signals come unasked
	sig     chan *godbus.Signal
	closed  chan struct{} // the signal channel ended: the connection is gone

	mu sync.Mutex
	// calls is the job calls whose reply (the job's path) is not in yet;
	// while there are any, a JobRemoved for no known job is kept in
	// early, as it may be theirs.
	calls int
	early map[godbus.ObjectPath]string
	wait  map[godbus.ObjectPath]chan string
}

// Connect connects to systemd's manager on the system bus (as root, to
// systemd's private socket when there is no bus) and reads systemd's
// version. ctx bounds the connection's set-up only. The private socket
// first, as systemctl does as root, measured no faster in the systemd
// guest (connect 28 ms against go-systemd's 34 on the bus, StartScope 67
// against 78: the bus's own ratios), and there systemd sends every
// client every signal of every unit, which a long-lived shim would parse.
func Connect(ctx context.Context) (*Conn, error) {
	b, version, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	return &Conn{b: b, version: version}, nil
}

// Version is systemd's version number (252 for "252.39-1~deb12u1"), read
// once at Connect from the Manager's Version property; -1 when it could
// not be parsed (then the version-gated properties are left out).
func (c *Conn) Version() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// Close closes the connection.
func (c *Conn) Close() error {
	c.mu.Lock()
	b := c.b
	c.b = nil
	c.mu.Unlock()
	if b == nil {
		return nil
	}
	return b.conn.Close()
}

// StartScope starts the transient unit p.Unit in p.Slice holding pid (the
// "PIDs" property; none when pid <= 0) with props, and waits for its job
// to finish, under ctx's deadline (30 s when it has none). A slice unit
// (p.Unit ending in ".slice") gets Wants=p.Slice and no Delegate instead,
// as in runc. A unit that already exists is ErrUnitExists; as runc 1.2 on
// does (1.1.5 took an existing unit as success), a failed leftover of the
// same name is reset and the start tried once more first. A job that
// does not end "done" is a *JobError naming the unit and the result, and
// the unit is reset so that no failed unit stays behind; a timeout stops
// the unit.
func (c *Conn) StartScope(ctx context.Context, p Path, pid int, props []sd.Property) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	all := make([]sd.Property, 0, len(props)+2)
	if strings.HasSuffix(p.Unit, ".slice") {
		all = append(all, sd.PropWants(p.Slice))
		for _, q := range props {
			if q.Name != "Delegate" {
				all = append(all, q)
			}
		}
	} else {
		all = append(all, sd.PropSlice(p.Slice))
		all = append(all, props...)
	}
	if pid > 0 {
		all = append(all, prop("PIDs", []uint32{uint32(pid)}))
	}
	var result string
	var err error
	for try := 0; ; try++ {
		err = c.retry(ctx, func(b *bus) error {
			result, err = b.job(ctx, "StartTransientUnit", p.Unit, "replace", all, []auxUnit{})
			return err
		})
		if !isDBusError(err, errUnitExists) {
			break
		}
		if try == 1 && c.collecting(ctx, p.Unit) {
			continue // an earlier container's, gone now
		}
		if try > 0 {
			return fmt.Errorf("%w: %s", ErrUnitExists, p.Unit)
		}
		// Perhaps a failed unit of an earlier container: reset, it goes.
		_ = c.resetFailed(ctx, p.Unit)
	}
	if err != nil {
		if ctx.Err() != nil {
			c.cleanUp(p.Unit)
		}
		return fmt.Errorf("systemd: start %s: %w", p.Unit, err)
	}
	if result != "done" {
		_ = c.resetFailed(ctx, p.Unit)
		return &JobError{Op: "start", Unit: p.Unit, Result: result}
	}
	return nil
}

// auxUnit is StartTransientUnit's auxiliary unit, D-Bus type (sa(sv));
// none are sent.
type auxUnit struct {
	Name  string
	Props []sd.Property
}

// SetProperties changes a unit's properties at runtime (an update):
// runtime=true, so nothing is written under /etc.
func (c *Conn) SetProperties(ctx context.Context, unit string, props []sd.Property) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	err := c.retry(ctx, func(b *bus) error {
		return b.mgr.CallWithContext(ctx, managerIface+".SetUnitProperties", 0, unit, true, props).Err
	})
	if err != nil {
		return fmt.Errorf("systemd: set properties of %s: %w", unit, err)
	}
	return nil
}

// Stop stops unit and waits until systemd has unloaded it, so that its
// cgroup is gone too; a unit that is not loaded is not an error. As in
// runc 1.2 on (not 1.1.5), a failed unit is reset after, so that it goes;
// a stop job that ends other than "done" is an error only if the unit
// stays.
func (c *Conn) Stop(ctx context.Context, unit string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	var result string
	err := c.retry(ctx, func(b *bus) (err error) {
		result, err = b.job(ctx, "StopUnit", unit, "replace")
		return err
	})
	if isDBusError(err, errNoSuchUnit) || isDBusError(err, errNotLoaded) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("systemd: stop %s: %w", unit, err)
	}
	// The unit is garbage-collected by systemd's event loop after the
	// job, unless it failed (an OOM kill): then a reset lets it go, done
	// only when it is still there, as it is a round trip.
	stayed, err := c.waitUnloaded(ctx, unit, func() { _ = c.resetFailed(ctx, unit) })
	switch {
	case err != nil:
		return fmt.Errorf("systemd: stop %s: %w", unit, err)
	case stayed && result != "done":
		return &JobError{Op: "stop", Unit: unit, Result: result}
	case stayed:
		return fmt.Errorf("systemd: stop %s: still loaded: %w", unit, ctx.Err())
	}
	return nil
}

// waitUnloaded polls until systemd has unloaded unit, or ctx ends with
// the unit still loaded (stayed). first, if not nil, runs once, when the
// unit is first seen loaded, before any wait.
func (c *Conn) waitUnloaded(ctx context.Context, unit string, first func()) (stayed bool, err error) {
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		loaded, err := c.loaded(ctx, unit)
		if err != nil || !loaded {
			return false, err
		}
		if first != nil {
			first()
			first = nil
			continue
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return true, nil
		case <-t.C:
		}
	}
}

// StopScope tells systemd to stop unit and returns: the call is sent
// without asking for a reply (Stop waits for the job and the unload). The
// unit goes through deactivating to inactive, systemd removes its cgroup
// (the caller waits for that: removing it first makes systemd miss the
// scope's end, and the unit then stays deactivating until its stop times
// out) and collects the unit moments later (CollectMode
// inactive-or-failed: a failed one too); a start of the same name
// meanwhile waits for that (StartScope). In the systemd guest (TCG),
// systemd took 350 ms to answer the call that queues the stop of a scope
// whose processes had just exited.
func (c *Conn) StopScope(ctx context.Context, unit string) error {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	err := c.retry(ctx, func(b *bus) error {
		return b.mgr.GoWithContext(ctx, managerIface+".StopUnit", godbus.FlagNoReplyExpected, nil, unit, "replace").Err
	})
	if err != nil {
		return fmt.Errorf("systemd: stop %s: %w", unit, err)
	}
	return nil
}

// collecting: unit exists but is stopping, or an inactive (or failed)
// one systemd has yet to unload: an earlier container's of the same name
// whose delete did not wait for that (StopScope); waits, under ctx, until
// it is gone.
func (c *Conn) collecting(ctx context.Context, unit string) bool {
	st, err := c.activeState(ctx, unit)
	if err != nil || (st != "inactive" && st != "failed" && st != "deactivating") {
		return false
	}
	if st == "failed" {
		_ = c.resetFailed(ctx, unit)
	}
	stayed, err := c.waitUnloaded(ctx, unit, nil)
	return err == nil && !stayed
}

// activeState is unit's ActiveState ("active", "inactive", "failed"...).
func (c *Conn) activeState(ctx context.Context, unit string) (string, error) {
	var v godbus.Variant
	err := c.retry(ctx, func(b *bus) error {
		var p godbus.ObjectPath
		if err := b.mgr.CallWithContext(ctx, managerIface+".GetUnit", 0, unit).Store(&p); err != nil {
			return err
		}
		return b.conn.Object(busName, p).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
			unitIface, "ActiveState").Store(&v)
	})
	if err != nil {
		return "", err
	}
	st, _ := v.Value().(string)
	return st, nil
}

// loaded: does systemd still have unit?
func (c *Conn) loaded(ctx context.Context, unit string) (bool, error) {
	err := c.retry(ctx, func(b *bus) error {
		var p godbus.ObjectPath
		return b.mgr.CallWithContext(ctx, managerIface+".GetUnit", 0, unit).Store(&p)
	})
	if isDBusError(err, errNoSuchUnit) {
		return false, nil
	}
	return err == nil, err
}

func (c *Conn) resetFailed(ctx context.Context, unit string) error {
	return c.retry(ctx, func(b *bus) error {
		return b.mgr.CallWithContext(ctx, managerIface+".ResetFailedUnit", 0, unit).Err
	})
}

// cleanUp stops a unit whose start timed out (its job may still run),
// without waiting: nothing of a failed start is to stay.
func (c *Conn) cleanUp(unit string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.retry(ctx, func(b *bus) error {
		return b.mgr.CallWithContext(ctx, managerIface+".StopUnit", 0, unit, "replace").Err
	})
	_ = c.resetFailed(ctx, unit)
}

// retry runs op on the connection, dialling again once when it was closed
// (runc's retryOnDisconnect).
func (c *Conn) retry(ctx context.Context, op func(*bus) error) error {
	c.mu.Lock()
	b := c.b
	c.mu.Unlock()
	if b == nil {
		return errors.New("systemd: connection closed")
	}
	err := op(b)
	if !errors.Is(err, godbus.ErrClosed) {
		return err
	}
	nb, err := c.redial(ctx, b)
	if err != nil {
		return err
	}
	return op(nb)
}

// redial replaces the closed connection old (once, however many callers
// saw it close).
func (c *Conn) redial(ctx context.Context, old *bus) (*bus, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.b == nil {
		return nil, errors.New("systemd: connection closed")
	}
	if c.b != old {
		return c.b, nil
	}
	b, version, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	old.conn.Close()
	c.b, c.version = b, version
	return b, nil
}

// dial connects and sets the connection up: authentication, Hello, the
// JobRemoved match and the Version property, the last two at once.
func dial(ctx context.Context) (*bus, int, error) {
	addr := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")
	if addr == "" {
		addr = "unix:path=" + systemBusSocket
	}
	b, version, err := dialAt(ctx, addr, false)
	if err == nil || os.Geteuid() != 0 || ctx.Err() != nil {
		if err != nil {
			return nil, 0, fmt.Errorf("systemd: connect to the system bus (%s): %w", addr, err)
		}
		return b, version, nil
	}
	b, version, err2 := dialAt(ctx, "unix:path="+privateSocket, true)
	if err2 != nil {
		return nil, 0, fmt.Errorf("systemd: not reachable (is systemd PID 1, with D-Bus?): system bus %s: %v; %s: %v", addr, err, privateSocket, err2)
	}
	return b, version, nil
}

func dialAt(ctx context.Context, addr string, private bool) (*bus, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	// Not dbus.WithContext(ctx): that context would close the
	// connection when it ends, after Connect too. ctx bounds the set-up
	// only, by closing the connection if it ends before.
	conn, err := godbus.Dial(addr)
	if err != nil {
		return nil, 0, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	b, version, err := setUp(conn, private)
	if !stop() {
		// ctx ended: the connection is being closed under the set-up.
		conn.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, 0, fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	return b, version, nil
}

func setUp(conn *godbus.Conn, private bool) (*bus, int, error) {
	// EXTERNAL with the uid, no user name look-up (as go-systemd does).
	if err := conn.Auth([]godbus.Auth{godbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		return nil, 0, fmt.Errorf("authenticate: %w", err)
	}
	if !private {
		if err := conn.Hello(); err != nil {
			return nil, 0, fmt.Errorf("hello: %w", err)
		}
	}
	b := &bus{
		conn:    conn,
		mgr:     conn.Object(busName, managerPath),
		private: private,
		sig:     make(chan *godbus.Signal, 16),
		closed:  make(chan struct{}),
		early:   map[godbus.ObjectPath]string{},
		wait:    map[godbus.ObjectPath]chan string{},
	}
	conn.Signal(b.sig)
	go b.dispatch()
	// The match (a bus daemon's: systemd's own socket sends the signals
	// to every client) and the version, both in flight at once.
	var match *godbus.Call
	if !private {
		match = conn.BusObject().Go("org.freedesktop.DBus.AddMatch", 0, make(chan *godbus.Call, 1),
			"type='signal',sender='"+busName+"',path='"+string(managerPath)+"',interface='"+managerIface+"',member='JobRemoved'")
	}
	ver := b.mgr.Go("org.freedesktop.DBus.Properties.Get", 0, make(chan *godbus.Call, 1), managerIface, "Version")
	var v godbus.Variant
	if err := (<-ver.Done).Store(&v); err != nil {
		return nil, 0, fmt.Errorf("systemd's manager (%s) does not answer: %w", busName, err)
	}
	if match != nil {
		if err := (<-match.Done).Err; err != nil {
			return nil, 0, fmt.Errorf("add the JobRemoved match: %w", err)
		}
	}
	s, _ := v.Value().(string)
	return b, parseVersion(s), nil
}

// parseVersion reads systemd's version number from the Version property:
// "252.39-1~deb12u1", "v245.4-1.fc32", "245" are 252, 245, 245; -1 when
// it has no number (as runc's systemdVersionAtoi).
func parseVersion(s string) int {
	s = strings.TrimLeft(s, "\"v")
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	v, err := strconv.Atoi(s[:n])
	if err != nil {
		return -1
	}
	return v
}

// dispatch hands each JobRemoved to the job waiting for it.
func (b *bus) dispatch() {
	defer close(b.closed)
	for s := range b.sig {
		if s.Name != jobRemoved || len(s.Body) < 4 {
			continue
		}
		path, _ := s.Body[1].(godbus.ObjectPath)
		result, _ := s.Body[3].(string)
		b.mu.Lock()
		if ch, ok := b.wait[path]; ok {
			ch <- result
			delete(b.wait, path)
		} else if b.calls > 0 {
			b.early[path] = result
		}
		b.mu.Unlock()
	}
}

// job calls a Manager method that queues a job (its reply is the job's
// path) and waits for the job's JobRemoved: its result.
func (b *bus) job(ctx context.Context, method string, args ...any) (string, error) {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	var path godbus.ObjectPath
	err := b.mgr.CallWithContext(ctx, managerIface+"."+method, 0, args...).Store(&path)
	b.mu.Lock()
	b.calls--
	result, early := b.early[path]
	var ch chan string
	if err == nil && !early {
		ch = make(chan string, 1)
		b.wait[path] = ch
	}
	if b.calls == 0 {
		clear(b.early)
	} else {
		delete(b.early, path)
	}
	b.mu.Unlock()
	if err != nil {
		return "", err
	}
	if early {
		return result, nil
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.wait, path)
		b.mu.Unlock()
		return "", fmt.Errorf("waiting for job %s: %w", path, ctx.Err())
	case <-b.closed:
		// Not ErrClosed: the call went through, so it is not to be
		// made again on a new connection.
		return "", fmt.Errorf("waiting for job %s: the connection closed", path)
	}
}

func isDBusError(err error, name string) bool {
	var e godbus.Error
	return errors.As(err, &e) && e.Name == name
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultTimeout)
}
