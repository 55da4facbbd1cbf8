package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// Logging as runc does it: errors go to stderr and, with --log, to the
// log file in text or JSON lines ({"level","msg","time"}); containerd's
// go-runc reads the last error line of a JSON log.
var (
	logOut    io.Writer
	logJSON   bool
	errOut    io.Writer = os.Stderr
	debugLogs bool
	// logIsStderr: the log is stderr (--debug without --log), where an
	// error is then said once, as a log line.
	logIsStderr bool
)

func setupLogging(g *globalOptions, stderr io.Writer) error {
	errOut = stderr
	debugLogs = g.Debug
	switch g.LogFormat {
	case "text", "":
	case "json":
		logJSON = true
	default:
		return fmt.Errorf("unknown log-format %q", g.LogFormat)
	}
	if g.Log != "" {
		f, err := os.OpenFile(g.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_SYNC, 0o644)
		if err != nil {
			return fmt.Errorf("open log file: %w", err)
		}
		logOut = f
	} else if g.Debug {
		// runc: --debug without --log logs to stderr.
		logOut, logIsStderr = stderr, true
	}
	return nil
}

func logf(level, format string, args ...any) {
	if logOut == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if logJSON {
		b, _ := json.Marshal(map[string]string{"level": level, "msg": msg, "time": time.Now().Format(time.RFC3339Nano)})
		logOut.Write(append(b, '\n'))
		return
	}
	fmt.Fprintf(logOut, "time=%q level=%s msg=%q\n", time.Now().Format(time.RFC3339Nano), level, msg)
}

func debugf(format string, args ...any) {
	if debugLogs {
		logf("debug", format, args...)
	}
}

// fatalf reports an error as runc does: to the log, and to stderr.
func fatalf(_ *globalOptions, format string, args ...any) {
	logf("error", format, args...)
	if !logIsStderr {
		fmt.Fprintf(errOut, format+"\n", args...)
	}
}
