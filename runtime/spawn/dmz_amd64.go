package spawn

import _ "embed"

// dmzBinary is dmz/dmz.c built by `make dmz` (gcc -static -nostdlib).
//
//go:embed dmz/fre-dmz-amd64
var dmzBinary []byte
