package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/fre-runtime/fre/engine"
)

// invoke calls a function through fre serve's API and prints its answer
// and how long the request took.
func invoke(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fre invoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "127.0.0.1:8080", "fre serve's `address`: host:port, or unix:PATH")
	timing := fs.Bool("time", false, "print the request's latency and whether it was cold after the answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprintln(stderr, "usage: fre invoke [--api ADDR] [--time] NAME [BODY]")
		return 2
	}
	c, base := apiClient(*api)
	t0 := time.Now()
	resp, err := c.Post(base+"/functions/"+fs.Arg(0)+"/invoke", "application/json", strings.NewReader(fs.Arg(1)))
	if err != nil {
		fmt.Fprintln(stderr, "fre invoke:", err)
		return 1
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil {
		fmt.Fprintln(stderr, "fre invoke:", err)
		return 1
	}
	stdout.Write(b)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	if *timing {
		fmt.Fprintf(stdout, "(%s, %.1f ms, cold=%s, instance %s)\n", resp.Status, float64(d.Microseconds())/1000, resp.Header.Get("Fre-Cold"), resp.Header.Get("Fre-Instance"))
	}
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

// apiClient is an HTTP client of the API at addr and the URL base.
func apiClient(addr string) (*http.Client, string) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return engine.UnixClient(p), "http://fre"
	}
	return http.DefaultClient, "http://" + addr
}
