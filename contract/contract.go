// Package contract is what a function instance and FRE agree on (the
// function contract, docs/function-contract.md): where the channel is in
// the container and the socket the function listens on, the workDir's
// default, and what a tenant's name may be. The runtime (annotations
// run.fre.tenant and run.fre.channel) and the engine both follow it; it
// has no dependencies, so the engine's command builds without cgo.
package contract

import (
	"errors"
	"fmt"
	"os"
)

const (
	// ChannelMount is the channel's directory in the container, and
	// Socket the socket the function listens on there (HTTP/1.1).
	ChannelMount = "/run/fre"
	Socket       = "fn.sock"
	// DefaultWorkDir is the tenant's workDir in the container when the
	// function names none.
	DefaultWorkDir = "/work"
	// DefaultTenantRoot and DefaultChannelRoot are where tenants'
	// workDirs and instances' channels live on the host by default.
	DefaultTenantRoot  = "/var/lib/fre/tenants"
	DefaultChannelRoot = "/run/fre/channels"
)

// ErrBadName: a tenant (or function) name that is not a plain name.
var ErrBadName = errors.New("not a plain name (lower-case letters, digits, '.', '_' or '-', at most 64, not starting with '.' or '-')")

// ValidName checks a tenant's or a function's name: lower-case letters,
// digits, '.', '_', '-', at most 64, not starting with '.' or '-'; never
// a path.
func ValidName(name string) error {
	ok := name != "" && len(name) <= 64 && name[0] != '.' && name[0] != '-'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%q is %w", name, ErrBadName)
	}
	return nil
}

// TenantRoot is where tenants' workDirs live: the setting given, else
// $FRE_TENANT_ROOT, else DefaultTenantRoot.
func TenantRoot(setting string) string {
	return firstOf(setting, os.Getenv("FRE_TENANT_ROOT"), DefaultTenantRoot)
}

// ChannelRoot is where the runtime makes instances' channels: the setting
// given, else $FRE_CHANNEL_ROOT, else DefaultChannelRoot.
func ChannelRoot(setting string) string {
	return firstOf(setting, os.Getenv("FRE_CHANNEL_ROOT"), DefaultChannelRoot)
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
