package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"

	"github.com/fre-runtime/fre/bench/resultfile"
)

// writeCSV writes through a temporary file, so a reader never sees half a
// table.
func writeCSV(path string, header []string, rows [][]string) error {
	return resultfile.CSV(path, header, rows)
}

// table is a CSV read by column name.
type table struct {
	path string
	cols map[string]int
	rows [][]string
}

func readTable(path string, need ...string) (*table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: %w", path, ErrNoData)
	}
	t := &table{path: path, cols: map[string]int{}, rows: recs[1:]}
	for i, h := range recs[0] {
		t.cols[h] = i
	}
	for _, n := range need {
		if _, ok := t.cols[n]; !ok {
			return nil, fmt.Errorf("%s: no column %q: %w", path, n, ErrFormat)
		}
	}
	return t, nil
}

func (t *table) str(row []string, col string) string {
	if i, ok := t.cols[col]; ok && i < len(row) {
		return row[i]
	}
	return ""
}

func (t *table) num(row []string, col string) float64 {
	v, _ := strconv.ParseFloat(t.str(row, col), 64)
	return v
}
