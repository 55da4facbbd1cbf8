package netns

import (
	"errors"
	"flag"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"host": PolicyHost, "new": PolicyNew, " Pool ": PolicyPool} {
		got, err := ParsePolicy(in)
		if err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "bridge", "hosts"} {
		_, err := ParsePolicy(in)
		if !errors.Is(err, ErrUnknownPolicy) {
			t.Errorf("ParsePolicy(%q) error = %v; want ErrUnknownPolicy", in, err)
		}
	}
}

func TestPolicyFromAnnotations(t *testing.T) {
	p, err := PolicyFromAnnotations(nil, DefaultPolicy)
	if err != nil || p != PolicyHost {
		t.Fatalf("no annotation: %q, %v", p, err)
	}
	p, err = PolicyFromAnnotations(map[string]string{Annotation: "pool"}, PolicyHost)
	if err != nil || p != PolicyPool {
		t.Fatalf("pool annotation: %q, %v", p, err)
	}
	_, err = PolicyFromAnnotations(map[string]string{Annotation: "nope"}, PolicyHost)
	if !errors.Is(err, ErrUnknownPolicy) {
		t.Fatalf("bad annotation: %v", err)
	}
	t.Log(err)
}

func TestPolicyFlagAndText(t *testing.T) {
	var p Policy = DefaultPolicy
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Var(&p, "netns-policy", "")
	if err := fs.Parse([]string{"--netns-policy=new"}); err != nil || p != PolicyNew {
		t.Fatalf("flag: %q, %v", p, err)
	}
	if err := p.UnmarshalText([]byte("pool")); err != nil || p != PolicyPool {
		t.Fatalf("text: %q, %v", p, err)
	}
	if err := p.UnmarshalText([]byte("x")); err == nil {
		t.Fatal("text: want error")
	}
}
