package main

import "errors"

var (
	// ErrNoData is returned when an input holds none of the figure's rows.
	ErrNoData = errors.New("freplot: no data")
	// ErrFormat is returned for a CSV whose header lacks a needed column.
	ErrFormat = errors.New("freplot: unexpected format")
)
