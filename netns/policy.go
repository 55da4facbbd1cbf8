package netns

import (
	"fmt"
	"strings"
)

// Policy says what to do for a container that asks for a network namespace
// without a path. A namespace given by path is always joined, whatever the
// policy.
type Policy string

const (
	// PolicyHost creates no namespace: the container shares the host's
	// network stack. FRE's default: functions sit behind a gateway, and a
	// new netns is the costliest step of a start under concurrency.
	PolicyHost Policy = "host"
	// PolicyNew creates a fresh namespace at clone time, as runc does.
	PolicyNew Policy = "new"
	// PolicyPool hands out a namespace created ahead of time by a Pool
	// (falling back to a new one when the pool is empty).
	PolicyPool Policy = "pool"

	// DefaultPolicy is the policy when neither flag, config nor
	// annotation chooses one.
	DefaultPolicy = PolicyHost

	// DefaultPoolDir is the host-wide pool's directory (a tmpfs of its
	// own, mounted there at first use).
	DefaultPoolDir = "/run/fre/netns-pool"

	// Annotation is the OCI annotation that overrides the policy for
	// one container.
	Annotation = "run.fre.netns"
)

// ParsePolicy parses "host", "new" or "pool" (case-insensitive, spaces
// trimmed). Anything else, including "", is an error wrapping
// ErrUnknownPolicy.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(strings.ToLower(strings.TrimSpace(s))); p {
	case PolicyHost, PolicyNew, PolicyPool:
		return p, nil
	}
	return "", fmt.Errorf("%w %q (want host, new or pool)", ErrUnknownPolicy, s)
}

// PolicyFromAnnotations returns the policy named by the run.fre.netns
// annotation, or def when the annotation is absent. A present but unknown
// value is an error naming the annotation, never a silent fallback.
func PolicyFromAnnotations(annotations map[string]string, def Policy) (Policy, error) {
	v, ok := annotations[Annotation]
	if !ok {
		return def, nil
	}
	p, err := ParsePolicy(v)
	if err != nil {
		return "", fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	return p, nil
}

// String implements fmt.Stringer and flag.Value.
func (p Policy) String() string { return string(p) }

// Set implements flag.Value, so a Policy can back a --netns-policy flag.
func (p *Policy) Set(s string) error {
	v, err := ParsePolicy(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalText implements encoding.TextMarshaler (config files).
func (p Policy) MarshalText() ([]byte, error) { return []byte(p), nil }

// UnmarshalText implements encoding.TextUnmarshaler (config files).
func (p *Policy) UnmarshalText(b []byte) error { return p.Set(string(b)) }
