// Command testfn is the tests' function: an HTTP/1.1 server on its
// channel's socket (/run/fre/fn.sock, FRE's function contract), static so
// that it runs in any rootfs.
//
//	GET  /health           200 "ok"
//	GET  /                 JSON: hostname, pid, instance, requests served, workDir entries
//	POST /write?name=N     the body into $FRE_WORKDIR/N (default /work)
//	GET  /read?name=N      that file
//	GET  /sleep?ms=N       answers after N ms
//	GET  /garbage          writes bytes that are not HTTP and closes
//	GET  /close            closes the connection mid-response
//	GET  /exit?code=N      exits with N (after answering nothing)
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
)

func main() {
	sock := os.Getenv("FRE_SOCKET")
	if sock == "" {
		sock = "/run/fre/fn.sock"
	}
	work := os.Getenv("FRE_WORKDIR")
	if work == "" {
		work = "/work"
	}
	if len(os.Args) > 1 && os.Args[1] == "delay" {
		// Ready late: the engine's readiness deadline.
		ms, _ := strconv.Atoi(os.Args[2])
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testfn:", err)
		os.Exit(1)
	}
	var served atomic.Int64
	// Every instance says which it is (its pid is 1 in a pid namespace).
	instance := fmt.Sprintf("%x", time.Now().UnixNano())
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n := served.Add(1)
		host, _ := os.Hostname()
		var names []string
		ents, _ := os.ReadDir(work)
		for _, e := range ents {
			names = append(names, e.Name())
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"hostname": host, "pid": os.Getpid(), "instance": instance, "served": n,
			"workdir": names, "path": r.URL.Path, "event": r.Header.Get("Fre-Event-Id")})
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		name := filepath.Base(r.URL.Query().Get("name"))
		f, err := os.Create(filepath.Join(work, name))
		if err == nil {
			_, err = f.ReadFrom(r.Body)
			f.Close()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "written")
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(filepath.Join(work, filepath.Base(r.URL.Query().Get("name"))))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprint(w, "slept")
	})
	hijack := func(w http.ResponseWriter, write string) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		c.Write([]byte(write))
		c.Close()
	}
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, r *http.Request) { hijack(w, "\x00\x01garbage, not HTTP\r\n\r\n") })
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		hijack(w, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		os.Exit(code)
	})
	http.Serve(l, mux)
}
