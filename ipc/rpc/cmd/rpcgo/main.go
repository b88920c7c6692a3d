// Command rpcgo compiles an RFC 4506/5531 .x interface file to Go: the XDR types,
// through goxdr (github.com/xdrpp/goxdr, run as `go tool goxdr`), and typed ONC RPC
// client and server stubs for package github.com/ipclab/ipclab/ipc/rpc.
//
//	rpcgo -p calc -o calc_xdr.go -stubs calc_rpc.go calc.x
//
// For each program version V of program P it writes:
//
//   - constants P, V and one per procedure, with the numbers of the .x file (as
//     rpcgen's header does);
//   - V_Client, whose methods call the procedures: PROC(ctx, arg *A, res *R,
//     ...rpc.CallOption) error, and Dial_V, which returns one;
//   - V_Handler, the interface a server implements: PROC(ctx, c *rpc.Call, arg *A,
//     res *R) error, and Register_V, which registers one with an *rpc.Server.
//
// A void argument or result has no parameter. Procedures take one argument (rpcgen's
// default); more is an error. goxdr sees the file without its program definitions
// (its own RPC interfaces would panic on errors), so the types are goxdr's exactly.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

func main() {
	pkg := flag.String("p", "", "Go package name of the output")
	out := flag.String("o", "", "output file for the XDR types (goxdr)")
	stubs := flag.String("stubs", "", "output file for the RPC stubs")
	flag.Parse()
	if *pkg == "" || *out == "" || *stubs == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: rpcgo -p package -o types.go -stubs stubs.go file.x")
		os.Exit(2)
	}
	if err := run(*pkg, *out, *stubs, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "rpcgo:", err)
		os.Exit(1)
	}
}

func run(pkg, out, stubs, src string) error {
	text, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := parse(string(text))
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	// goxdr compiles the file with its program definitions blanked out (newlines
	// kept, so that its messages point at the right lines).
	tmp, err := os.MkdirTemp("", "rpcgo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	typesOnly := filepath.Join(tmp, filepath.Base(src))
	if err := os.WriteFile(typesOnly, []byte(f.typesOnly), 0o600); err != nil {
		return err
	}
	cmd := exec.Command("go", "tool", "goxdr", "-fmt", "-p", pkg, "-o", out, typesOnly)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go tool goxdr: %w", err)
	}
	// goxdr names the temporary file in its header: name the real one.
	gen, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	gen = bytes.Replace(gen, []byte(typesOnly), []byte(filepath.Base(src)), 1)
	// goxdr writes XdrString{p, bound} and XdrVecOpaque{p, bound}: key them, as go
	// vet wants composite literals of another package's struct types.
	gen = unkeyed.ReplaceAll(gen, []byte("$1{Str: $2, Bound: $3}"))
	gen = unkeyedOpaque.ReplaceAll(gen, []byte("$1{Bytes: $2, Bound: $3}"))
	if err := os.WriteFile(out, gen, 0o644); err != nil {
		return err
	}
	code, err := f.stubs(pkg, filepath.Base(src))
	if err != nil {
		return err
	}
	return os.WriteFile(stubs, code, 0o644)
}

var (
	unkeyed       = regexp.MustCompile(`\b(XdrString)\{([^{},]+), ([A-Za-z0-9_]+)\}`)
	unkeyedOpaque = regexp.MustCompile(`\b(XdrVecOpaque)\{([^{},]+), ([A-Za-z0-9_]+)\}`)
)

type proc struct {
	name      string
	num       uint32
	arg, res  xtype
	argIsVoid bool
	resIsVoid bool
}

type version struct {
	name  string
	num   uint32
	procs []proc
}

type program struct {
	name     string
	num      uint32
	versions []version
}

type file struct {
	programs  []program
	typesOnly string
}

// xtype is an XDR type named in a procedure: its Go type and its XDR_ function.
type xtype struct{ goType, xdrFunc string }

var builtin = map[string]xtype{
	"int":            {"int32", "xdr.XDR_int32"},
	"unsigned int":   {"uint32", "xdr.XDR_uint32"},
	"unsigned":       {"uint32", "xdr.XDR_uint32"},
	"hyper":          {"int64", "xdr.XDR_int64"},
	"unsigned hyper": {"uint64", "xdr.XDR_uint64"},
	"bool":           {"bool", "xdr.XDR_bool"},
	"float":          {"float32", "xdr.XDR_float32"},
	"double":         {"float64", "xdr.XDR_float64"},
}

// goName is goxdr's name for an XDR identifier: its first letter capitalised.
func goName(id string) string {
	r := []rune(id)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// token is a lexeme and its byte offset.
type token struct {
	s   string
	off int
}

// lex splits a .x file into identifiers, numbers and punctuation, skipping comments,
// `%` pass-through lines and preprocessor lines.
func lex(src string) ([]token, error) {
	var toks []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment")
			}
			i += end + 4
		case c == '/' && strings.HasPrefix(src[i:], "//"), (c == '%' || c == '#') && (i == 0 || src[i-1] == '\n'):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '_' || unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)):
			j := i
			for j < len(src) && (src[j] == '_' || unicode.IsLetter(rune(src[j])) || unicode.IsDigit(rune(src[j]))) {
				j++
			}
			toks = append(toks, token{src[i:j], i})
			i = j
		case c == '-' && i+1 < len(src) && unicode.IsDigit(rune(src[i+1])):
			j := i + 1
			for j < len(src) && (unicode.IsLetter(rune(src[j])) || unicode.IsDigit(rune(src[j]))) {
				j++
			}
			toks = append(toks, token{src[i:j], i})
			i = j
		default:
			toks = append(toks, token{string(c), i})
			i++
		}
	}
	return toks, nil
}

type parser struct {
	toks   []token
	i      int
	consts map[string]uint32
}

func (p *parser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i].s
	}
	return ""
}

func (p *parser) next() string {
	s := p.peek()
	p.i++
	return s
}

func (p *parser) expect(s string) error {
	if got := p.next(); got != s {
		return fmt.Errorf("expected %q, found %q", s, got)
	}
	return nil
}

func (p *parser) ident() (string, error) {
	s := p.next()
	if s == "" || !(s[0] == '_' || unicode.IsLetter(rune(s[0]))) {
		return "", fmt.Errorf("expected an identifier, found %q", s)
	}
	return s, nil
}

// number reads a literal or a constant's name.
func (p *parser) number() (uint32, error) {
	s := p.next()
	if v, ok := p.consts[s]; ok {
		return v, nil
	}
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("expected a number, found %q", s)
	}
	return uint32(v), nil
}

// typ reads a procedure's argument or result type.
func (p *parser) typ() (t xtype, void bool, err error) {
	s := p.next()
	switch s {
	case "void":
		return xtype{}, true, nil
	case "unsigned":
		if n := p.peek(); n == "int" || n == "hyper" {
			p.next()
			s += " " + n
		}
	case "string", "opaque":
		return t, false, fmt.Errorf("%s as a procedure type: name it with a typedef", s)
	case "struct", "union", "enum":
		s = p.next()
	}
	if b, ok := builtin[s]; ok {
		return b, false, nil
	}
	if s == "" || !(s[0] == '_' || unicode.IsLetter(rune(s[0]))) {
		return t, false, fmt.Errorf("expected a type, found %q", s)
	}
	if p.peek() == "*" {
		return t, false, fmt.Errorf("pointer type %s* as a procedure type: name it with a typedef", s)
	}
	return xtype{goName(s), "XDR_" + goName(s)}, false, nil
}

func parse(src string) (*file, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, consts: map[string]uint32{}}
	f := &file{}
	blank := []byte(src)
	for p.i < len(p.toks) {
		switch p.peek() {
		case "const":
			p.next()
			name, err := p.ident()
			if err != nil {
				return nil, err
			}
			if err := p.expect("="); err != nil {
				return nil, err
			}
			if v, err := p.number(); err == nil {
				p.consts[name] = v
			}
		case "program":
			start := p.toks[p.i].off
			prog, err := p.program()
			if err != nil {
				return nil, fmt.Errorf("program: %w", err)
			}
			end := p.toks[p.i-1].off + 1
			for k := start; k < end; k++ {
				if blank[k] != '\n' {
					blank[k] = ' '
				}
			}
			f.programs = append(f.programs, prog)
		default:
			p.next()
		}
	}
	if len(f.programs) == 0 {
		return nil, fmt.Errorf("no program definition")
	}
	f.typesOnly = string(blank)
	return f, nil
}

func (p *parser) program() (program, error) {
	var prog program
	p.next() // "program"
	var err error
	if prog.name, err = p.ident(); err != nil {
		return prog, err
	}
	if err := p.expect("{"); err != nil {
		return prog, err
	}
	for p.peek() == "version" {
		p.next()
		var v version
		if v.name, err = p.ident(); err != nil {
			return prog, err
		}
		if err := p.expect("{"); err != nil {
			return prog, err
		}
		for p.peek() != "}" {
			var pr proc
			if pr.res, pr.resIsVoid, err = p.typ(); err != nil {
				return prog, err
			}
			if pr.name, err = p.ident(); err != nil {
				return prog, err
			}
			if err := p.expect("("); err != nil {
				return prog, err
			}
			if pr.arg, pr.argIsVoid, err = p.typ(); err != nil {
				return prog, err
			}
			if p.peek() == "," {
				return prog, fmt.Errorf("procedure %s: more than one argument", pr.name)
			}
			if err := p.expect(")"); err != nil {
				return prog, err
			}
			if err := p.expect("="); err != nil {
				return prog, err
			}
			if pr.num, err = p.number(); err != nil {
				return prog, err
			}
			if err := p.expect(";"); err != nil {
				return prog, err
			}
			v.procs = append(v.procs, pr)
		}
		p.next() // "}"
		if len(v.procs) == 0 {
			return prog, fmt.Errorf("version %s has no procedures", v.name)
		}
		if err := p.expect("="); err != nil {
			return prog, err
		}
		if v.num, err = p.number(); err != nil {
			return prog, err
		}
		if err := p.expect(";"); err != nil {
			return prog, err
		}
		prog.versions = append(prog.versions, v)
	}
	if err := p.expect("}"); err != nil {
		return prog, err
	}
	if err := p.expect("="); err != nil {
		return prog, err
	}
	if prog.num, err = p.number(); err != nil {
		return prog, err
	}
	return prog, p.expect(";")
}

// stubs writes the Go stubs of every program version of f.
func (f *file) stubs(pkg, src string) ([]byte, error) {
	var b bytes.Buffer
	pf := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	pf("// Code generated by rpcgo -p %s from %s; DO NOT EDIT.\n\n", pkg, src)
	pf("package %s\n\n", pkg)
	pf("import (\n\t\"context\"\n\n\t\"github.com/xdrpp/goxdr/xdr\"\n\n\t\"github.com/ipclab/ipclab/ipc/rpc\"\n)\n\n")
	pf("var _ = xdr.XDR_int32\n\n")
	for _, prog := range f.programs {
		pf("// %s is the program number of %s.\nconst %s uint32 = %#x\n\n", prog.name, prog.name, prog.name, prog.num)
		for _, v := range prog.versions {
			pf("// Version %s of program %s and its procedure numbers.\nconst (\n", v.name, prog.name)
			pf("\t%s uint32 = %d\n", v.name, v.num)
			for _, pr := range v.procs {
				pf("\t%s uint32 = %d\n", pr.name, pr.num)
			}
			pf(")\n\n")

			client := v.name + "_Client"
			pf("// %s calls version %s of program %s.\ntype %s struct {\n\tC *rpc.Client\n}\n\n", client, v.name, prog.name, client)
			pf("// Dial_%s returns a client of version %s of %s at addr over network (\"tcp\" or \"udp\").\n", v.name, v.name, prog.name)
			pf("func Dial_%s(ctx context.Context, network, addr string, opts ...rpc.ClientOption) (%s, error) {\n", v.name, client)
			pf("\tc, err := rpc.Dial(ctx, network, addr, %s, %s, opts...)\n\treturn %s{C: c}, err\n}\n\n", prog.name, v.name, client)
			pf("// Close closes the client.\nfunc (c %s) Close() error { return c.C.Close() }\n\n", client)
			for _, pr := range v.procs {
				params, argV, resV := "", "rpc.Void", "rpc.Void"
				if !pr.argIsVoid {
					params += ", arg *" + pr.arg.goType
					argV = pr.arg.xdrFunc + "(arg)"
				}
				if !pr.resIsVoid {
					params += ", res *" + pr.res.goType
					resV = pr.res.xdrFunc + "(res)"
				}
				pf("// %s calls procedure %s (%d).\n", pr.name, pr.name, pr.num)
				pf("func (c %s) %s(ctx context.Context%s, opts ...rpc.CallOption) error {\n", client, pr.name, params)
				pf("\treturn c.C.Call(ctx, %s, %s, %s, opts...)\n}\n\n", pr.name, argV, resV)
			}

			handler := v.name + "_Handler"
			pf("// %s is what a server of version %s of %s implements. A method's error\n", handler, v.name, prog.name)
			pf("// becomes the reply's status, as for rpc.ProcFunc.\ntype %s interface {\n", handler)
			for _, pr := range v.procs {
				params := ""
				if !pr.argIsVoid {
					params += ", arg *" + pr.arg.goType
				}
				if !pr.resIsVoid {
					params += ", res *" + pr.res.goType
				}
				pf("\t%s(ctx context.Context, c *rpc.Call%s) error\n", pr.name, params)
			}
			pf("}\n\n")
			pf("// Register_%s makes s serve version %s of %s with h.\n", v.name, v.name, prog.name)
			pf("func Register_%s(s *rpc.Server, h %s) error {\n", v.name, handler)
			pf("\tif h == nil {\n\t\treturn s.Register(%s, %s, map[uint32]rpc.ProcFunc{%s: nil})\n\t}\n", prog.name, v.name, v.procs[0].name)
			pf("\treturn s.Register(%s, %s, map[uint32]rpc.ProcFunc{\n", prog.name, v.name)
			for _, pr := range v.procs {
				pf("\t\t%s: func(ctx context.Context, c *rpc.Call) error {\n", pr.name)
				call := "h." + pr.name + "(ctx, c"
				if !pr.argIsVoid {
					pf("\t\t\tvar arg %s\n\t\t\tif err := c.Args(%s(&arg)); err != nil {\n\t\t\t\treturn err\n\t\t\t}\n", pr.arg.goType, pr.arg.xdrFunc)
					call += ", &arg"
				} else {
					pf("\t\t\tif err := c.Args(rpc.Void); err != nil {\n\t\t\t\treturn err\n\t\t\t}\n")
				}
				if !pr.resIsVoid {
					pf("\t\t\tvar res %s\n", pr.res.goType)
					call += ", &res"
				}
				call += ")"
				if pr.resIsVoid {
					pf("\t\t\treturn %s\n\t\t},\n", call)
				} else {
					pf("\t\t\tif err := %s; err != nil {\n\t\t\t\treturn err\n\t\t\t}\n", call)
					pf("\t\t\treturn c.Result(%s(&res))\n\t\t},\n", pr.res.xdrFunc)
				}
			}
			pf("\t})\n}\n\n")
		}
	}
	code, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("formatting the stubs: %w\n%s", err, b.Bytes())
	}
	return code, nil
}
