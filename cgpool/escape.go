package cgpool

import (
	"errors"
	"strings"
)

// escapeParent is url.PathEscape (a parent cgroup path as one file name,
// "/" as %2F), without package net/url, whose dependencies (net/netip,
// unique) cost every fre-runc process their set-up.
func escapeParent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keepInSegment(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// keepInSegment: url.shouldEscape(c, encodePathSegment) is false.
func keepInSegment(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '_', '.', '~', '$', '&', '+', ':', '=', '@':
		return true
	}
	return false
}

var errBadEscape = errors.New("invalid URL escape")

// unescapeParent is url.PathUnescape.
func unescapeParent(s string) (string, error) {
	unhex := func(c byte) (byte, bool) {
		switch {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		case 'A' <= c && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errBadEscape
		}
		h, ok1 := unhex(s[i+1])
		l, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", errBadEscape
		}
		b.WriteByte(h<<4 | l)
		i += 2
	}
	return b.String(), nil
}
