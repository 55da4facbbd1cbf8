package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// The memory scenario's images: five language runtimes copied from this
// machine, each with a tiny HTTP app. Every image is its own directory
// tree (no shared layer), yet they carry identical files (libc, libm,
// libz...), as unrelated images built from different bases do.

// lang is one image: its files and how to start its app on a port.
type lang struct {
	name  string
	files []string // host paths: files, symlinks (followed) or directories (recursive)
	skip  func(path string) bool
	// app files written into the image, by path inside it.
	app  map[string]string
	args func(root string, port int) []string // root is "" in a container
	env  []string
	// build runs after the files are in place (javac).
	build func(root string) error
}

const javaHome = "/usr/lib/jvm/java-17-openjdk-amd64"

func languages() []*lang {
	pyLib := "/usr/lib/python3.11"
	return []*lang{
		{
			name:  "busybox",
			files: []string{"/bin/busybox"},
			app:   map[string]string{"/www/index.html": "hello from busybox\n"},
			args: func(root string, port int) []string {
				return []string{"/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:" + strconv.Itoa(port), "-h", root + "/www"}
			},
		},
		{
			name:  "python",
			files: []string{"/usr/bin/python3.11", pyLib},
			skip: func(p string) bool {
				rel := strings.TrimPrefix(p, pyLib+"/")
				for _, d := range []string{"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "dist-packages", "config-3.11-x86_64-linux-gnu", "unittest", "pydoc_data"} {
					if rel == d || strings.HasPrefix(rel, d+"/") {
						return true
					}
				}
				return false
			},
			app: map[string]string{"/app/app.py": `import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from python\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`},
			args: func(root string, port int) []string {
				return []string{"/usr/bin/python3.11", root + "/app/app.py", strconv.Itoa(port)}
			},
			env: []string{"PYTHONDONTWRITEBYTECODE=1"},
		},
		{
			name:  "node",
			files: []string{"/usr/bin/node"},
			app: map[string]string{"/app/app.js": `const http = require("http");
http.createServer((req, res) => { res.end("hello from node\n"); })
  .listen(Number(process.argv[2]), "127.0.0.1");
`},
			args: func(root string, port int) []string {
				return []string{"/usr/bin/node", root + "/app/app.js", strconv.Itoa(port)}
			},
		},
		{
			name:  "java",
			files: []string{javaHome + "/bin/java", javaHome + "/lib", javaHome + "/conf", javaHome + "/release"},
			skip: func(p string) bool {
				b := filepath.Base(p)
				return b == "src.zip" || b == "ct.sym" || strings.HasSuffix(p, "/lib/jfr")
			},
			app: map[string]string{"/app/App.java": `import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
public class App {
    public static void main(String[] a) throws Exception {
        HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(a[0])), 16);
        s.createContext("/", x -> {
            byte[] b = "hello from java\n".getBytes();
            x.sendResponseHeaders(200, b.length);
            x.getResponseBody().write(b);
            x.close();
        });
        s.start();
    }
}
`},
			args: func(root string, port int) []string {
				return []string{javaHome + "/bin/java", "-Xmx32m", "-Xss512k", "-XX:+UseSerialGC",
					"-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-Xshare:auto",
					"-cp", root + "/app", "App", strconv.Itoa(port)}
			},
			build: func(root string) error {
				out, err := exec.Command("javac", "-d", filepath.Join(root, "app"), filepath.Join(root, "app", "App.java")).CombinedOutput()
				if err != nil {
					return fmt.Errorf("javac: %v: %s", err, out)
				}
				return nil
			},
		},
		{
			name:  "perl",
			files: []string{"/usr/bin/perl", "/usr/lib/x86_64-linux-gnu/perl-base"},
			app: map[string]string{"/app/app.pl": `use strict; use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => $ARGV[0], Listen => 16, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) {
    while (my $l = <$c>) { last if $l =~ /^\r?\n$/; }
    print $c "HTTP/1.0 200 OK\r\nContent-Length: 16\r\n\r\nhello from perl\n";
    close $c;
}
`},
			args: func(root string, port int) []string {
				return []string{"/usr/bin/perl", root + "/app/app.pl", strconv.Itoa(port)}
			},
		},
	}
}

// imageBuilder copies host files into an image root, replicating the
// symlinks on the way (/lib -> usr/lib) so paths resolve as on the host.
type imageBuilder struct {
	root  string
	done  map[string]bool
	chain map[string]bool
	skip  func(string) bool
	// regular lists the host paths of the regular files copied.
	regular []string
}

// buildImage writes l's image into root and returns its unpacked size.
func buildImage(l *lang, root string) error {
	b := &imageBuilder{root: root, done: map[string]bool{}, chain: map[string]bool{}, skip: l.skip}
	if b.skip == nil {
		b.skip = func(string) bool { return false }
	}
	for _, d := range []string{"", "/tmp", "/etc"} {
		if err := os.MkdirAll(root+d, 0o755); err != nil {
			return err
		}
	}
	os.Chmod(root+"/tmp", 0o1777)
	os.WriteFile(root+"/etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	for _, f := range l.files {
		if err := b.add(f); err != nil {
			return err
		}
	}
	// The shared libraries the dynamic loader will want, for every ELF
	// file copied (libjvm.so, python's extension modules), until closed.
	for checked := map[string]bool{}; ; {
		added := false
		for _, f := range b.regular {
			if checked[f] || !isELF(f) {
				continue
			}
			checked[f] = true
			libs, _ := lddDeps(f)
			for _, lib := range libs {
				if !b.done[filepath.Clean(lib)] {
					added = true
				}
				if err := b.add(lib); err != nil {
					return err
				}
			}
		}
		if !added {
			break
		}
	}
	for p, content := range l.app {
		if err := os.MkdirAll(filepath.Dir(root+p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(root+p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if l.build != nil {
		return l.build(root)
	}
	return nil
}

func isELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var m [4]byte
	_, err = io.ReadFull(f, m[:])
	return err == nil && string(m[:]) == "\x7fELF"
}

// lddDeps lists the libraries ldd reports for an ELF file (nothing for a
// static binary or a directory).
func lddDeps(path string) ([]string, error) {
	if fi, err := os.Stat(path); err != nil || fi.IsDir() {
		return nil, err
	}
	out, err := exec.Command("ldd", path).Output()
	if err != nil {
		return nil, err
	}
	var libs []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			libs = append(libs, f[2])
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			libs = append(libs, f[0])
		}
	}
	return libs, nil
}

// real resolves a host directory's symlinks.
func real(dir string) string {
	r, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return dir
	}
	return r
}

// ensureDir makes host directory d exist in the image, with every
// symlink component as a symlink.
func (b *imageBuilder) ensureDir(d string) error {
	if d == "/" || b.chain[d] {
		return nil
	}
	b.chain[d] = true
	if err := b.ensureDir(filepath.Dir(d)); err != nil {
		return err
	}
	fi, err := os.Lstat(d)
	if err != nil {
		return err
	}
	at := filepath.Join(b.root, real(filepath.Dir(d)), filepath.Base(d))
	if fi.Mode()&os.ModeSymlink != 0 {
		target, err := os.Readlink(d)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, at); err != nil && !os.IsExist(err) {
			return err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(d), target)
		}
		return b.ensureDir(target)
	}
	if err := os.Mkdir(at, fi.Mode().Perm()); err != nil && !os.IsExist(err) {
		return err
	}
	return nil
}

// add copies host path p (a directory recursively; a symlink and what it
// points to) into the image.
func (b *imageBuilder) add(p string) error {
	p = filepath.Clean(p)
	if b.done[p] || b.skip(p) {
		return nil
	}
	b.done[p] = true
	fi, err := os.Lstat(p)
	if err != nil {
		return nil // a dangling link's target: leave it out
	}
	if err := b.ensureDir(filepath.Dir(p)); err != nil {
		return err
	}
	dst := filepath.Join(b.root, real(filepath.Dir(p)), filepath.Base(p))
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil && !os.IsExist(err) {
			return err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		return b.add(target)
	case fi.IsDir():
		if err := b.ensureDir(p); err != nil {
			return err
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := b.add(filepath.Join(p, e.Name())); err != nil {
				return err
			}
		}
		return nil
	case fi.Mode().IsRegular():
		b.regular = append(b.regular, p)
		return copyFile(p, dst, fi)
	}
	return nil // devices, sockets, fifos: not in an image
}

func copyFile(src, dst string, fi os.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm())
	if err != nil {
		if os.IsExist(err) {
			return nil
		}
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	os.Chmod(dst, fi.Mode().Perm())
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

// dirSize is the sum of a tree's regular file sizes (each path once, as
// an unpacked layer counts them).
func dirSize(root string) (int64, error) {
	var n int64
	err := filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}
