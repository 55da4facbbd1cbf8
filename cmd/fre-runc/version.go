package main

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Version is set with -ldflags "-X main.Version=...".
var Version = "0.1.0-dev"

func specVersion() string { return specs.Version }
