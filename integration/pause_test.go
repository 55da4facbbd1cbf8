package integration

// pauseRef names the locally built sandbox (pause) image the CRI tests use
// (containerd's pinned_images.sandbox).
const pauseRef = "localhost/fre-pause:1"
