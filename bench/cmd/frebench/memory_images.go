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

// The memory scenario's images, modelled on Docker Hub's default tags (the
// research compares FRE with "the images DockerHub provides"): python:3,
// node and perl are built FROM buildpack-deps:bookworm (Debian plus curl,
// version control and the build tool chain and -dev libraries), the
// openjdk images FROM buildpack-deps:bookworm-scm (Debian plus curl and
// version control), busybox FROM scratch. Each image is its own directory
// tree built on its own (no shared layer), and each differs in a few
// files as images built from different base versions and Dockerfiles do
// (/etc/os-release, /etc/hostname, /etc/passwd, dpkg's status), so no two
// are homologous; most of their files are still identical, which is what
// the store shares.
//
// The userlands are copied with dpkg -L from this machine (Debian 12):
// debian:bookworm's package set (basePackages, about 120 MiB), and the
// packages buildpack-deps adds on top (buildpackCurl, buildpackSCM,
// buildpackFull) as far as this machine has them, with the dependencies
// it has installed (the full set comes to about 570 MiB here; Docker
// Hub's buildpack-deps:bookworm is about 830 MiB unpacked).

// basePackages is debian:bookworm's package set (plus ca-certificates,
// netbase, libsqlite3, libssl3, libffi8, readline: what the language
// images add first on every Debian base).
var basePackages = strings.Fields(`adduser apt base-files base-passwd bash bsdutils ca-certificates
coreutils dash debconf debian-archive-keyring debianutils diffutils dpkg findutils gcc-12-base
gpgv grep gzip hostname init-system-helpers libacl1 libapt-pkg6.0 libattr1 libaudit-common
libaudit1 libblkid1 libbz2-1.0 libc-bin libc6 libcap-ng0 libcap2 libcom-err2 libcrypt1 libdb5.3
libdebconfclient0 libext2fs2 libffi8 libgcc-s1 libgcrypt20 libgmp10 libgnutls30 libgpg-error0
libgssapi-krb5-2 libhogweed6 libidn2-0 libk5crypto3 libkeyutils1 libkrb5-3 libkrb5support0
liblz4-1 liblzma5 libmd0 libmount1 libncursesw6 libnettle8 libnsl2 libp11-kit0 libpam-modules
libpam-modules-bin libpam-runtime libpam0g libpcre2-8-0 libreadline8 libseccomp2 libselinux1
libsemanage-common libsemanage2 libsepol2 libsmartcols1 libsqlite3-0 libss2 libssl3 libstdc++6
libsystemd0 libtasn1-6 libtinfo6 libtirpc-common libtirpc3 libudev1 libunistring2 libuuid1
libxxhash0 libzstd1 login logsave mawk mount ncurses-base ncurses-bin netbase openssl passwd
perl-base readline-common sed sysvinit-utils tar tzdata usr-is-merged util-linux util-linux-extra
zlib1g`)

// The packages each buildpack-deps:bookworm layer installs (its
// Dockerfiles: curl, scm, then the full image).
var (
	buildpackCurl = strings.Fields(`ca-certificates curl gnupg netbase sq wget`)
	buildpackSCM  = strings.Fields(`git mercurial openssh-client subversion procps`)
	buildpackFull = strings.Fields(`autoconf automake bzip2 default-libmysqlclient-dev dpkg-dev file g++ gcc
imagemagick libbz2-dev libc6-dev libcurl4-openssl-dev libdb-dev libevent-dev libffi-dev libgdbm-dev
libglib2.0-dev libgmp-dev libjpeg-dev libkrb5-dev liblzma-dev libmagickcore-dev libmagickwand-dev
libmaxminddb-dev libncurses5-dev libncursesw5-dev libpng-dev libpq-dev libreadline-dev
libsqlite3-dev libssl-dev libtool libwebp-dev libxml2-dev libxslt-dev libyaml-dev make patch unzip
xz-utils zlib1g-dev`)
)

// Base userlands an image is built FROM.
const (
	baseNone      = "scratch"                     // busybox
	baseDebian    = "debian:bookworm"             // basePackages
	baseSCM       = "buildpack-deps:bookworm-scm" // + curl + scm
	baseBuildpack = "buildpack-deps:bookworm"     // + curl + scm + full
)

// userland is a base's files and dpkg status, and what of its package
// list this machine lacks.
type userland struct {
	paths   []string
	status  []byte
	missing []string
}

// userlands are the base userlands listed so far, by base.
type userlands map[string]*userland

// get is base's userland, listed once (baseFiles).
func (us userlands) get(base string) (*userland, error) {
	if u := us[base]; u != nil {
		return u, nil
	}
	u, err := baseFiles(base)
	if err != nil {
		return nil, err
	}
	us[base] = u
	return u, nil
}

// installed: dpkg has package p installed (not merely known).
func installed(p string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev}", p).Output()
	return err == nil && strings.HasPrefix(string(out), "ii")
}

// baseFiles lists a base userland's paths (dpkg -L of its packages and
// their installed dependencies, and dpkg's own records of them) and its
// status file.
func baseFiles(base string) (*userland, error) {
	if base == baseNone {
		return &userland{}, nil
	}
	want := append([]string{}, basePackages...)
	switch base {
	case baseSCM:
		want = append(append(want, buildpackCurl...), buildpackSCM...)
	case baseBuildpack:
		want = append(append(append(want, buildpackCurl...), buildpackSCM...), buildpackFull...)
	}
	u := &userland{}
	var have []string
	for _, p := range want {
		if !installed(p) {
			u.missing = append(u.missing, p)
			continue
		}
		have = append(have, p)
	}
	pkgs := have
	if base != baseDebian {
		// What the packages pull in, as apt would install it.
		out, err := exec.Command("apt-cache", append([]string{"depends", "--recurse", "--no-recommends",
			"--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", "--installed"}, have...)...).Output()
		if err != nil {
			return nil, fmt.Errorf("apt-cache depends: %v", err)
		}
		seen := map[string]bool{}
		pkgs = nil
		for _, l := range strings.Split(string(out), "\n") {
			if l == "" || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "<") || seen[l] {
				continue
			}
			seen[l] = true
			if installed(l) {
				pkgs = append(pkgs, l)
			}
		}
	}
	out, err := exec.Command("dpkg", append([]string{"-L"}, pkgs...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg -L (the base userland is Debian's): %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "/") && l != "/." {
			u.paths = append(u.paths, l)
		}
	}
	for _, p := range pkgs {
		name := strings.TrimSuffix(p, ":amd64")
		for _, pat := range []string{name + ".*", name + ":amd64.*"} {
			m, _ := filepath.Glob("/var/lib/dpkg/info/" + pat)
			u.paths = append(u.paths, m...)
		}
	}
	u.status, err = exec.Command("dpkg-query", append([]string{"-s"}, pkgs...)...).Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg-query -s: %v", err)
	}
	return u, nil
}

// imageVariant writes the few files that differ between images built
// from different bases and Dockerfiles.
func imageVariant(l *lang, root string, status []byte, n int) error {
	files := map[string]string{
		"/etc/os-release": fmt.Sprintf(`PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
BUILD_ID="fre-%s-12.%d"
IMAGE_ID="fre-%s"
`, l.name, n+1, l.name),
		"/etc/hostname": "fre-" + l.name + "\n",
		"/etc/passwd": "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n" + l.name + ":x:1000:1000::/app:/bin/sh\n",
	}
	if l.base != baseNone {
		files["/var/lib/dpkg/status"] = string(status) + fmt.Sprintf("\nPackage: fre-%s-runtime\nStatus: install ok installed\nVersion: 1.%d\nArchitecture: amd64\nDescription: %s runtime of the FRE memory bench\n", l.name, n, l.name)
	}
	for p, content := range files {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		os.Remove(dst) // /etc/os-release is a symlink in base-files
		if err := os.WriteFile(dst, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// lang is one image: its files and how to start its app on a port.
type lang struct {
	name  string
	base  string   // the userland it is built FROM (baseNone, baseSCM, ...)
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
			base:  baseNone,
			files: []string{"/bin/busybox"},
			app:   map[string]string{"/www/index.html": "hello from busybox\n"},
			args: func(root string, port int) []string {
				return []string{"/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:" + strconv.Itoa(port), "-h", root + "/www"}
			},
		},
		{
			name:  "python",
			base:  baseBuildpack,
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
			base:  baseBuildpack,
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
			base:  baseSCM,
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
			base:  baseBuildpack,
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

// buildImage writes l's image into root: the base userland (base, from
// baseFiles; its directories are made, not copied whole), the runtime,
// the app, and the image's own variant files (n numbers the image).
func buildImage(l *lang, root string, base []string, status []byte, n int) error {
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
	for _, p := range base {
		// A directory (or a symlink to one: /lib -> usr/lib) is made,
		// never copied whole: the package lists name its files.
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			if err := b.ensureDir(p); err != nil {
				return err
			}
			continue
		}
		if err := b.add(p); err != nil {
			return err
		}
	}
	if err := imageVariant(l, root, status, n); err != nil {
		return err
	}
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
