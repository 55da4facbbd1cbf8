package main

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Version is set with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"

// Commit is the source's commit, set by make build with -ldflags
// "-X main.Commit=..." (runc's "commit:" line).
var Commit = "unknown"

func specVersion() string { return specs.Version }
