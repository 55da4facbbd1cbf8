// Package resultfile writes the bench's result files (CSV tables, PNG
// charts) so that a reader never sees half of one.
package resultfile

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
)

// Write writes path through a temporary file renamed into place and says
// so on stdout.
func Write(path string, write func(io.Writer) error) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(path + ".tmp")
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", path)
	return nil
}

// CSV writes a table: the header, then the rows.
func CSV(path string, header []string, rows [][]string) error {
	return Write(path, func(f io.Writer) error {
		w := csv.NewWriter(f)
		w.Write(header)
		w.WriteAll(rows)
		return w.Error()
	})
}
