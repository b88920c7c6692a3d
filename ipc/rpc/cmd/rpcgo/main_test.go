package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// The example interface parses to its one program and four procedures, and the
// types-only text goxdr gets has no program left and the same lines.
func TestParseCalc(t *testing.T) {
	src, err := os.ReadFile("../../example/calc.x")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parse(string(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.programs) != 1 || f.programs[0].name != "CALC_PROG" || f.programs[0].num != 0x20001234 {
		t.Fatalf("programs: %+v", f.programs)
	}
	v := f.programs[0].versions
	if len(v) != 1 || v[0].name != "CALC_V1" || v[0].num != 1 || len(v[0].procs) != 4 {
		t.Fatalf("versions: %+v", v)
	}
	want := []string{"CALC_NULL 0 void void", "CALC_EVAL 1 Request Answer", "CALC_SWAB 2 uint64 uint64", "CALC_SORT 3 Nums Nums"}
	for i, p := range v[0].procs {
		arg, res := p.arg.goType, p.res.goType
		if p.argIsVoid {
			arg = "void"
		}
		if p.resIsVoid {
			res = "void"
		}
		if got := strings.Join([]string{p.name, strconv.Itoa(int(p.num)), arg, res}, " "); got != want[i] {
			t.Errorf("procedure %d: %s, want %s", i, got, want[i])
		}
	}
	if strings.Contains(f.typesOnly, "program") || strings.Count(f.typesOnly, "\n") != strings.Count(string(src), "\n") {
		t.Errorf("types-only text keeps a program or changes lines:\n%s", f.typesOnly)
	}
}

// Constants, hex numbers, comments and pass-through lines are understood; what
// rpcgo cannot express is an error naming it, never a panic or wrong code.
func TestParseErrors(t *testing.T) {
	ok := `
%#include <stdio.h>
const P = 0x20000001; /* a comment with program inside */
const V = 2;
typedef int count;
program P_PROG { version P_V { count GET(unsigned hyper) = 0x10; } = V; } = P;
`
	f, err := parse(ok)
	if err != nil {
		t.Fatal(err)
	}
	p := f.programs[0]
	if p.num != 0x20000001 || p.versions[0].num != 2 || p.versions[0].procs[0].num != 16 ||
		p.versions[0].procs[0].res.goType != "Count" || p.versions[0].procs[0].arg.xdrFunc != "xdr.XDR_uint64" {
		t.Errorf("parsed %+v", p)
	}
	for name, src := range map[string]string{
		"two arguments":  `program P { version V { int F(int, int) = 1; } = 1; } = 1;`,
		"string result":  `program P { version V { string F(int) = 1; } = 1; } = 1;`,
		"unknown number": `program P { version V { int F(int) = NOPE; } = 1; } = 1;`,
		"no program":     `const A = 1;`,
		"empty version":  `program P { version V { } = 1; } = 1;`,
		"cut short":      `program P { version V { int F(int`,
		"comment":        `/* never closed`,
	} {
		if _, err := parse(src); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
