//go:build failpoints

package main

import "os"

func init() { failpoint = os.Getenv("FRE_FAILPOINT") }
