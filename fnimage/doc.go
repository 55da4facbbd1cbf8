// Package fnimage builds function images (issue 16, the research's
// sections 4.3 and 5): a function environment template (package fret)
// becomes
//
//   - an OCI image layout whose layers follow the template's parts, base,
//     libs, packages and code, each a reproducible tar (sorted entries,
//     owner root, mtime 0, gzip without a name or time), so that functions
//     with the same base share that layer in any registry and the same
//     template and inputs give the same digests;
//   - the function's tree in FRE's shared store (rootfs.Store), the
//     layers imported as hard links, held by a ref named after the
//     function, so identical files of different functions are one inode;
//   - optionally a runnable OCI bundle on that tree, read-only, with the
//     template's entrypoint, env and limits.
//
// Nothing of the host is mounted into a function: what it needs is in its
// image. The ELF closure of every program and library the image holds (its
// interpreter and DT_NEEDED, resolved through the loader's paths as ld.so
// resolves them) is taken at build time, so a missing shared library fails
// the build, not the first request.
//
// Bases: static (nothing), python, perl, node and java, from Debian's
// packages (base.go): the build host's installed ones, or fetched with
// apt-get download when they are not, with the language's own check of the
// entrypoint run in the image (none for java). Dependency packages
// (packages.go, deps.go): Debian packages with the Depends the image
// lacks, npm packages with npm, pip packages from a wheel directory with
// pip, each fetched once into the fetch cache and layered as the packages
// part.
package fnimage
