package inspect

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Snapshots built by hand.

// graphTwoPipes: two processes, each reading a pipe only the other can write.
func graphTwoPipes() *Snapshot {
	return &Snapshot{
		Processes: []Process{{PID: 101, Comm: "left"}, {PID: 102, Comm: "right"}},
		Objects: []Object{
			{ID: "pipe:1001", Kind: KindPipe, Queued: 0},
			{ID: "pipe:1002", Kind: KindPipe, Queued: 0},
		},
		Waits: []Wait{
			{PID: 101, TID: 101, Comm: "left", Syscall: "read", FD: 3, Object: "pipe:1001", For: "data", State: "empty", Wakers: []int{102}},
			{PID: 102, TID: 102, Comm: "right", Syscall: "read", FD: 3, Object: "pipe:1002", For: "data", State: "empty", Wakers: []int{101}},
		},
		Deadlocks: []Deadlock{{Path: []Step{
			{PID: 101, TID: 101, Comm: "left", Syscall: "read", Object: "pipe:1001"},
			{PID: 102, TID: 102, Comm: "right", Syscall: "read", Object: "pipe:1002"},
		}}},
	}
}

// graphThreeKinds: a cycle through a pipe, a System V queue and a Unix socket;
// two threads of 201 wait on the pipe, and 204 waits on the socket too without
// being part of the cycle.
func graphThreeKinds() *Snapshot {
	return &Snapshot{
		Processes: []Process{{PID: 201, Comm: "alpha"}, {PID: 202, Comm: "beta"}, {PID: 203, Comm: "gamma"}, {PID: 204, Comm: "delta"}},
		Objects: []Object{
			{ID: "msg:3", Kind: KindSysVQueue, Name: "0x0000162e"},
			{ID: "pipe:2001", Kind: KindPipe},
			{ID: "unix:4001", Kind: KindUnixStream, Name: "/tmp/g.sock", State: "established"},
		},
		Waits: []Wait{
			{PID: 201, TID: 201, Comm: "alpha", Syscall: "read", Object: "pipe:2001", For: "data", State: "empty", Wakers: []int{202}},
			{PID: 201, TID: 211, Comm: "alpha", Syscall: "read", Object: "pipe:2001", For: "data", State: "empty", Wakers: []int{202}},
			{PID: 202, TID: 202, Comm: "beta", Syscall: "msgrcv", Object: "msg:3", For: "data", State: "empty", Wakers: []int{203}},
			{PID: 203, TID: 203, Comm: "gamma", Syscall: "recvfrom", Object: "unix:4001", For: "data", State: "empty", Wakers: []int{201}},
			{PID: 204, TID: 204, Comm: "delta", Syscall: "recvfrom", Object: "unix:4001", For: "data", State: "empty", Wakers: []int{201}},
		},
		Deadlocks: []Deadlock{{Path: []Step{
			{PID: 201, TID: 201, Comm: "alpha", Syscall: "read", Object: "pipe:2001"},
			{PID: 202, TID: 202, Comm: "beta", Syscall: "msgrcv", Object: "msg:3"},
			{PID: 203, TID: 203, Comm: "gamma", Syscall: "recvfrom", Object: "unix:4001"},
		}}},
	}
}

// graphBusy: waits that something outside can end: wakers that do not wait, a
// timed wait. No deadlock.
func graphBusy() *Snapshot {
	return &Snapshot{
		Processes: []Process{{PID: 301, Comm: "producer"}, {PID: 302, Comm: "consumer"}, {PID: 303, Comm: "reader"}, {PID: 304, Comm: "w1"}, {PID: 305, Comm: "w2"}, {PID: 306, Comm: "poller"}},
		Objects: []Object{
			{ID: "mq:/jobs", Kind: KindPosixMQ, Name: "/jobs"},
			{ID: "pipe:5001", Kind: KindPipe},
			{ID: "pipe:5002", Kind: KindPipe},
		},
		Waits: []Wait{
			{PID: 301, TID: 301, Comm: "producer", Syscall: "write", Object: "pipe:5001", For: "space", State: "full", Wakers: []int{302}},
			{PID: 303, TID: 303, Comm: "reader", Syscall: "read", Object: "pipe:5002", For: "data", State: "empty", Wakers: []int{304, 305}},
			{PID: 306, TID: 306, Comm: "poller", Syscall: "mq_timedreceive", Object: "mq:/jobs", For: "data", State: "empty", Timed: true, Wakers: []int{301}},
		},
	}
}

// graphEscapes: names that need quoting in DOT and escaping in SVG.
func graphEscapes() *Snapshot {
	const odd = `a"b\c<d>&`
	obj := `mq:/` + odd
	return &Snapshot{
		Processes: []Process{{PID: 401, Comm: odd}, {PID: 402, Comm: "x\ny\x01'z"}},
		Objects:   []Object{{ID: obj, Kind: KindPosixMQ, Name: "/" + odd}, {ID: "pipe:9", Kind: KindPipe}},
		Waits: []Wait{
			{PID: 401, TID: 401, Comm: odd, Syscall: "mq_receive", Object: obj, For: "data", State: "empty", Wakers: []int{402}},
			{PID: 402, TID: 402, Comm: "x\ny\x01'z", Syscall: "read", Object: "pipe:9", For: "data", State: "empty", Wakers: []int{401}},
		},
		Deadlocks: []Deadlock{{Path: []Step{
			{PID: 401, TID: 401, Comm: odd, Syscall: "mq_receive", Object: obj},
			{PID: 402, TID: 402, Comm: "x\ny\x01'z", Syscall: "read", Object: "pipe:9"},
		}}},
	}
}

// graphCase is a snapshot and the graph it should give: node keys, edges as
// "from -> to", and which edges are on a deadlock's cycle.
type graphCase struct {
	name      string
	snap      *Snapshot
	nodes     []string
	edges     []string
	deadlock  []string // edges on a cycle
	deadNodes []string
}

func graphCases() []graphCase {
	return []graphCase{
		{
			name:      "two-pipes",
			snap:      graphTwoPipes(),
			nodes:     []string{"p:101", "p:102", "o:pipe:1001", "o:pipe:1002"},
			edges:     []string{"p:101 -> o:pipe:1001", "p:102 -> o:pipe:1002", "o:pipe:1001 -> p:102", "o:pipe:1002 -> p:101"},
			deadlock:  []string{"p:101 -> o:pipe:1001", "p:102 -> o:pipe:1002", "o:pipe:1001 -> p:102", "o:pipe:1002 -> p:101"},
			deadNodes: []string{"p:101", "p:102", "o:pipe:1001", "o:pipe:1002"},
		},
		{
			name:  "three-kinds",
			snap:  graphThreeKinds(),
			nodes: []string{"p:201", "p:202", "p:203", "p:204", "o:msg:3", "o:pipe:2001", "o:unix:4001"},
			edges: []string{
				"p:201 -> o:pipe:2001", "p:202 -> o:msg:3", "p:203 -> o:unix:4001", "p:204 -> o:unix:4001",
				"o:pipe:2001 -> p:202", "o:msg:3 -> p:203", "o:unix:4001 -> p:201",
			},
			deadlock: []string{
				"p:201 -> o:pipe:2001", "p:202 -> o:msg:3", "p:203 -> o:unix:4001",
				"o:pipe:2001 -> p:202", "o:msg:3 -> p:203", "o:unix:4001 -> p:201",
			},
			deadNodes: []string{"p:201", "p:202", "p:203", "o:msg:3", "o:pipe:2001", "o:unix:4001"},
		},
		{
			name:  "busy",
			snap:  graphBusy(),
			nodes: []string{"p:301", "p:302", "p:303", "p:304", "p:305", "p:306", "o:mq:/jobs", "o:pipe:5001", "o:pipe:5002"},
			edges: []string{
				"p:301 -> o:pipe:5001", "p:303 -> o:pipe:5002", "p:306 -> o:mq:/jobs",
				"o:pipe:5001 -> p:302", "o:pipe:5002 -> p:304", "o:pipe:5002 -> p:305", "o:mq:/jobs -> p:301",
			},
		},
		{
			name: "empty",
			snap: &Snapshot{},
		},
		{
			name:  "escapes",
			snap:  graphEscapes(),
			nodes: []string{"p:401", "p:402", `o:mq:/a"b\c<d>&`, "o:pipe:9"},
			edges: []string{`p:401 -> o:mq:/a"b\c<d>&`, "p:402 -> o:pipe:9", `o:mq:/a"b\c<d>& -> p:402`, "o:pipe:9 -> p:401"},
			deadlock: []string{
				`p:401 -> o:mq:/a"b\c<d>&`, "p:402 -> o:pipe:9", `o:mq:/a"b\c<d>& -> p:402`, "o:pipe:9 -> p:401",
			},
			deadNodes: []string{"p:401", "p:402", `o:mq:/a"b\c<d>&`, "o:pipe:9"},
		},
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// A dotGraph is what parseDOT read.
type dotGraph struct {
	name  string
	attrs map[string]string            // the graph's
	nodes map[string]map[string]string // by ID
	edges []dotEdge
}

type dotEdge struct {
	from, to string
	attrs    map[string]string
}

// dotTokens splits DOT text into tokens: quoted strings (unescaped, marked with
// a leading '"'), words and punctuation. Comments are skipped.
func dotTokens(t *testing.T, s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"':
			var b strings.Builder
			b.WriteByte('"')
			i++
			for {
				if i >= len(s) {
					t.Fatalf("DOT: unterminated string")
				}
				if s[i] == '\\' && i+1 < len(s) {
					// DOT itself only unescapes \"; labels give \\ and \n their
					// meaning. IDs here use the same escapes.
					switch s[i+1] {
					case '"':
						b.WriteByte('"')
					case '\\':
						b.WriteByte('\\')
					case 'n':
						b.WriteByte('\n')
					default:
						t.Fatalf("DOT: unexpected escape \\%c", s[i+1])
					}
					i += 2
					continue
				}
				if s[i] == '"' {
					i++
					break
				}
				if s[i] == '\n' {
					t.Fatalf("DOT: raw newline in a string")
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, b.String())
		case strings.HasPrefix(s[i:], "->"):
			toks = append(toks, "->")
			i += 2
		case strings.ContainsRune("{}[]=,;", rune(c)):
			toks = append(toks, string(c))
			i++
		default:
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '.' || 'a' <= s[j] && s[j] <= 'z' || 'A' <= s[j] && s[j] <= 'Z' || '0' <= s[j] && s[j] <= '9') {
				j++
			}
			if j == i {
				t.Fatalf("DOT: unexpected %q", s[i:min(len(s), i+20)])
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

// parseDOT reads the subset of DOT WriteDOT writes.
func parseDOT(t *testing.T, s string) *dotGraph {
	t.Helper()
	toks := dotTokens(t, s)
	at := 0
	next := func() string {
		if at >= len(toks) {
			t.Fatalf("DOT: unexpected end")
		}
		at++
		return toks[at-1]
	}
	expect := func(want string) {
		if got := next(); got != want {
			t.Fatalf("DOT: got %q, want %q (token %d)", got, want, at-1)
		}
	}
	id := func(s string) string {
		if !strings.HasPrefix(s, `"`) {
			t.Fatalf("DOT: ID %q not quoted", s)
		}
		return s[1:]
	}
	value := func(s string) string { return strings.TrimPrefix(s, `"`) }
	attrList := func() map[string]string {
		m := map[string]string{}
		expect("[")
		for {
			k := next()
			if k == "]" {
				return m
			}
			if k == "," {
				continue
			}
			expect("=")
			m[k] = value(next())
		}
	}
	g := &dotGraph{attrs: map[string]string{}, nodes: map[string]map[string]string{}}
	expect("digraph")
	g.name = id(next())
	expect("{")
	for {
		tok := next()
		switch {
		case tok == "}":
			if at != len(toks) {
				t.Fatalf("DOT: text after the graph")
			}
			return g
		case tok == "node" || tok == "edge":
			attrList()
		case !strings.HasPrefix(tok, `"`):
			expect("=")
			g.attrs[tok] = value(next())
		default:
			from := id(tok)
			if toks[at] == "->" {
				next()
				to := id(next())
				g.edges = append(g.edges, dotEdge{from, to, attrList()})
			} else {
				if _, dup := g.nodes[from]; dup {
					t.Fatalf("DOT: node %q twice", from)
				}
				g.nodes[from] = attrList()
			}
		}
		expect(";")
	}
}

func renderDOT(t *testing.T, s *Snapshot) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteDOT(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func renderSVG(t *testing.T, s *Snapshot) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteSVG(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWriteDOTGraph(t *testing.T) {
	for _, c := range graphCases() {
		t.Run(c.name, func(t *testing.T) {
			out := renderDOT(t, c.snap)
			g := parseDOT(t, out)
			if g.name != "waitfor" {
				t.Errorf("graph name %q", g.name)
			}
			var nodes, edges, red, redNodes []string
			for k, a := range g.nodes {
				nodes = append(nodes, k)
				want := "ellipse"
				if strings.HasPrefix(k, "p:") {
					want = "box"
				}
				if a["shape"] != want {
					t.Errorf("node %q: shape %q, want %q", k, a["shape"], want)
				}
				if a["color"] == "red" {
					redNodes = append(redNodes, k)
					if a["penwidth"] != "2" {
						t.Errorf("node %q: red, penwidth %q", k, a["penwidth"])
					}
				}
			}
			for _, e := range g.edges {
				if _, ok := g.nodes[e.from]; !ok {
					t.Errorf("edge from undeclared node %q", e.from)
				}
				if _, ok := g.nodes[e.to]; !ok {
					t.Errorf("edge to undeclared node %q", e.to)
				}
				name := e.from + " -> " + e.to
				edges = append(edges, name)
				wake := strings.HasPrefix(e.from, "o:")
				if wake != (e.attrs["style"] == "dashed") || wake != (e.attrs["label"] == "can wake") {
					t.Errorf("edge %s: style %q, label %q", name, e.attrs["style"], e.attrs["label"])
				}
				if e.attrs["color"] == "red" {
					red = append(red, name)
					if e.attrs["penwidth"] != "2" {
						t.Errorf("edge %s: red, penwidth %q", name, e.attrs["penwidth"])
					}
				}
			}
			if got, want := sorted(nodes), sorted(c.nodes); !slices.Equal(got, want) {
				t.Errorf("nodes\n got %q\nwant %q", got, want)
			}
			if got, want := sorted(edges), sorted(c.edges); !slices.Equal(got, want) {
				t.Errorf("edges\n got %q\nwant %q", got, want)
			}
			if got, want := sorted(red), sorted(c.deadlock); !slices.Equal(got, want) {
				t.Errorf("red edges\n got %q\nwant %q", got, want)
			}
			if got, want := sorted(redNodes), sorted(c.deadNodes); !slices.Equal(got, want) {
				t.Errorf("red nodes\n got %q\nwant %q", got, want)
			}
			label := g.attrs["label"]
			if c.snap.Waits == nil {
				if label != emptyGraphLabel {
					t.Errorf("empty graph: label %q", label)
				}
			} else if want := fmt.Sprintf("%d deadlock", len(c.snap.Deadlocks)); !strings.Contains(label, want) {
				t.Errorf("label %q does not say %q", label, want)
			}
			if t.Failed() {
				t.Log(out)
			}
		})
	}
}

func TestWriteDOTLabels(t *testing.T) {
	g := parseDOT(t, renderDOT(t, graphThreeKinds()))
	for key, want := range map[string]string{
		"p:201":       "alpha\npid 201",
		"o:pipe:2001": "pipe:2001\nempty",
		"o:msg:3":     "msg:3\nsysv-msg 0x0000162e\nempty",
		"o:unix:4001": "unix:4001\nunix-stream /tmp/g.sock\nempty",
	} {
		if got := g.nodes[key]["label"]; got != want {
			t.Errorf("node %s: label %q, want %q", key, got, want)
		}
	}
	labels := map[string]string{}
	for _, e := range g.edges {
		labels[e.from+" -> "+e.to] = e.attrs["label"]
	}
	for edge, want := range map[string]string{
		"p:201 -> o:pipe:2001": "read (data) ×2",
		"p:202 -> o:msg:3":     "msgrcv (data)",
		"o:msg:3 -> p:203":     "can wake",
	} {
		if got := labels[edge]; got != want {
			t.Errorf("edge %s: label %q, want %q", edge, got, want)
		}
	}
	g = parseDOT(t, renderDOT(t, graphBusy()))
	for _, e := range g.edges {
		if e.from == "p:306" && e.attrs["label"] != "mq_timedreceive (data, timed)" {
			t.Errorf("timed wait: label %q", e.attrs["label"])
		}
	}

	// Escapes: the names come back whole from the quoted strings; a control
	// character is replaced.
	g = parseDOT(t, renderDOT(t, graphEscapes()))
	if got, want := g.nodes["p:401"]["label"], "a\"b\\c<d>&\npid 401"; got != want {
		t.Errorf("escaped label %q, want %q", got, want)
	}
	if got, want := g.nodes[`o:mq:/a"b\c<d>&`]["label"], "mq:/a\"b\\c<d>&\nposix-mq /a\"b\\c<d>&\nempty"; got != want {
		t.Errorf("escaped object label %q, want %q", got, want)
	}
	if got, want := g.nodes["p:402"]["label"], "x\uFFFDy\uFFFD'z\npid 402"; got != want {
		t.Errorf("control characters: label %q, want %q", got, want)
	}
}

func TestWriteDOTDeterministic(t *testing.T) {
	for _, c := range graphCases() {
		if a, b := renderDOT(t, c.snap), renderDOT(t, c.snap); a != b {
			t.Errorf("%s: two renders differ", c.name)
		}
		if a, b := renderSVG(t, c.snap), renderSVG(t, c.snap); a != b {
			t.Errorf("%s: two SVG renders differ", c.name)
		}
	}
	// Large graphs too (map iteration order would show).
	s := randomWaitSnapshot(rand.New(rand.NewPCG(7, 7)), 30)
	if a, b := renderDOT(t, s), renderDOT(t, s); a != b {
		t.Error("random graph: two DOT renders differ")
	}
	if a, b := renderSVG(t, s), renderSVG(t, s); a != b {
		t.Error("random graph: two SVG renders differ")
	}
}

func TestWriteDOTWithDot(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("Graphviz dot is not installed (apt-get install graphviz):", err)
	}
	cases := graphCases()
	cases = append(cases, graphCase{name: "random", snap: randomWaitSnapshot(rand.New(rand.NewPCG(1, 2)), 25)})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, dot, "-Tsvg")
			cmd.Stdin = strings.NewReader(renderDOT(t, c.snap))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("dot -Tsvg: %v\n%s", err, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("dot -Tsvg warns: %s", stderr.String())
			}
			// dot's SVG names each node in a <title>: the escaped ID comes back.
			if c.name == "escapes" && !strings.Contains(stdout.String(), "mq:/a&quot;b\\\\c&lt;d&gt;&amp;") && !strings.Contains(stdout.String(), "mq:/a&quot;b\\c&lt;d&gt;&amp;") {
				t.Errorf("dot output lacks the escaped object ID:\n%s", stdout.String())
			}
		})
	}
}

// An svgDoc is what readSVG found in an SVG document.
type svgDoc struct {
	root      map[string]string
	title     string
	text      string              // all character data of <text> elements
	nodes     map[string][]string // data-id → classes
	edges     map[string][]string // "from -> to" → classes
	marks     int
	rects     map[string]svgBox // node boxes from rect/ellipse geometry
	hasScript bool
	external  bool
}

func attrMap(e xml.StartElement) map[string]string {
	m := map[string]string{}
	for _, a := range e.Attr {
		m[a.Name.Local] = a.Value
	}
	return m
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("SVG: number %q: %v", s, err)
	}
	return v
}

// readSVG decodes the whole document, failing the test if it is not
// well-formed XML.
func readSVG(t *testing.T, doc string) *svgDoc {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	d.Strict = true
	out := &svgDoc{nodes: map[string][]string{}, edges: map[string][]string{}, rects: map[string]svgBox{}}
	var stack []string
	node := ""
	var text strings.Builder
	inText := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			a := attrMap(tok)
			name := tok.Name.Local
			if len(stack) == 0 {
				if name != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Fatalf("root element %v", tok.Name)
				}
				out.root = a
			}
			stack = append(stack, name)
			if name == "script" || name == "foreignObject" || name == "image" {
				out.hasScript = true
			}
			for k, v := range a {
				if k == "href" || strings.Contains(v, "http:") && k != "xmlns" || strings.Contains(v, "url(") && !strings.HasPrefix(v, "url(#") {
					out.external = true
				}
			}
			classes := strings.Fields(a["class"])
			if slices.Contains(classes, "mark") {
				out.marks++
			}
			switch {
			case slices.Contains(classes, "node"):
				if _, dup := out.nodes[a["data-id"]]; dup {
					t.Errorf("SVG: node %q twice", a["data-id"])
				}
				out.nodes[a["data-id"]] = classes
				node = a["data-id"]
			case slices.Contains(classes, "edge"):
				out.edges[a["data-from"]+" -> "+a["data-to"]] = classes
			case name == "rect" && node != "":
				x, y, w, h := num(t, a["x"]), num(t, a["y"]), num(t, a["width"]), num(t, a["height"])
				out.rects[node] = svgBox{x + w/2, y + h/2, w, h}
			case name == "ellipse" && node != "":
				rx, ry := num(t, a["rx"]), num(t, a["ry"])
				out.rects[node] = svgBox{num(t, a["cx"]), num(t, a["cy"]), 2 * rx, 2 * ry}
			case name == "text":
				inText++
			}
		case xml.EndElement:
			name := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if name == "g" {
				node = ""
			}
			if name == "text" {
				inText--
				text.WriteString("\n")
			}
		case xml.CharData:
			if len(stack) == 2 && stack[1] == "title" {
				out.title = string(tok)
			}
			if inText > 0 {
				text.Write(tok)
			}
		}
	}
	out.text = text.String()
	return out
}

func TestWriteSVGGraph(t *testing.T) {
	for _, c := range graphCases() {
		t.Run(c.name, func(t *testing.T) {
			doc := renderSVG(t, c.snap)
			s := readSVG(t, doc)
			if s.root["class"] != "chart waitfor" {
				t.Errorf("root class %q", s.root["class"])
			}
			for _, k := range []string{"width", "height", "viewBox"} {
				if s.root[k] == "" {
					t.Errorf("root has no %s", k)
				}
			}
			vb := strings.Fields(s.root["viewBox"])
			if len(vb) != 4 || vb[2] != s.root["width"] || vb[3] != s.root["height"] {
				t.Errorf("viewBox %q, width %q, height %q", s.root["viewBox"], s.root["width"], s.root["height"])
			}
			if s.hasScript || s.external {
				t.Error("SVG has a script or an external reference")
			}
			if !strings.Contains(doc, "<style>") || !strings.Contains(doc, "<marker") {
				t.Error("SVG lacks its style sheet or arrow markers")
			}
			want := fmt.Sprintf("wait-for graph: %d blocked thread", len(c.snap.Waits))
			if !strings.HasPrefix(s.title, want) || !strings.Contains(s.title, fmt.Sprintf("%d deadlock", len(c.snap.Deadlocks))) {
				t.Errorf("title %q", s.title)
			}
			if !strings.Contains(s.text, s.title) {
				t.Errorf("title %q not drawn", s.title)
			}
			if len(c.snap.Waits) == 0 && !strings.Contains(s.text, emptyGraphLabel) {
				t.Errorf("empty graph does not say %q", emptyGraphLabel)
			}
			if got, want := s.marks, len(c.nodes)+len(c.edges); got != want {
				t.Errorf("%d marks, want %d", got, want)
			}
			var nodes, edges, dead, deadNodes []string
			for k, cl := range s.nodes {
				nodes = append(nodes, k)
				want := "object"
				if strings.HasPrefix(k, "p:") {
					want = "process"
				}
				if !slices.Contains(cl, want) || !slices.Contains(cl, "mark") {
					t.Errorf("node %q: classes %q", k, cl)
				}
				if slices.Contains(cl, "deadlock") {
					deadNodes = append(deadNodes, k)
				}
			}
			for k, cl := range s.edges {
				edges = append(edges, k)
				want := "wait"
				if strings.HasPrefix(k, "o:") {
					want = "wake"
				}
				if !slices.Contains(cl, want) || !slices.Contains(cl, "mark") {
					t.Errorf("edge %q: classes %q", k, cl)
				}
				if slices.Contains(cl, "deadlock") {
					dead = append(dead, k)
				}
			}
			if got, want := sorted(nodes), sorted(c.nodes); !slices.Equal(got, want) {
				t.Errorf("nodes\n got %q\nwant %q", got, want)
			}
			if got, want := sorted(edges), sorted(c.edges); !slices.Equal(got, want) {
				t.Errorf("edges\n got %q\nwant %q", got, want)
			}
			if got, want := sorted(dead), sorted(c.deadlock); !slices.Equal(got, want) {
				t.Errorf("deadlock edges\n got %q\nwant %q", got, want)
			}
			if got, want := sorted(deadNodes), sorted(c.deadNodes); !slices.Equal(got, want) {
				t.Errorf("deadlock nodes\n got %q\nwant %q", got, want)
			}
			checkNoOverlap(t, s.rects)
			// Everything drawn lies inside the view box.
			x0, y0, w, h := num(t, vb[0]), num(t, vb[1]), num(t, vb[2]), num(t, vb[3])
			for k, b := range s.rects {
				if b.x-b.w/2 < x0 || b.y-b.h/2 < y0 || b.x+b.w/2 > x0+w || b.y+b.h/2 > y0+h {
					t.Errorf("node %q at %v outside the view box %v", k, b, vb)
				}
			}
			if t.Failed() {
				t.Log(doc)
			}
		})
	}
}

func checkNoOverlap(t *testing.T, boxes map[string]svgBox) {
	t.Helper()
	keys := make([]string, 0, len(boxes))
	for k := range boxes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, a := range keys {
		for _, b := range keys[i+1:] {
			if boxes[a].overlaps(boxes[b]) {
				t.Errorf("nodes %q %v and %q %v overlap", a, boxes[a], b, boxes[b])
			}
		}
	}
}

func TestWriteSVGEscapes(t *testing.T) {
	doc := renderSVG(t, graphEscapes())
	s := readSVG(t, doc)
	for _, want := range []string{`a"b\c<d>&`, `mq:/a"b\c<d>&`, "x\uFFFDy\uFFFD'z"} {
		if !strings.Contains(s.text, want) {
			t.Errorf("drawn text lacks %q:\n%s", want, s.text)
		}
	}
	if _, ok := s.nodes[`o:mq:/a"b\c<d>&`]; !ok {
		t.Errorf("no node for the escaped object: %q", slices.Sorted(func(yield func(string) bool) {
			for k := range s.nodes {
				if !yield(k) {
					return
				}
			}
		}))
	}
	if strings.Contains(doc, "<d>") || strings.Contains(doc, "\x01") || strings.Contains(doc, `a"b`) {
		t.Error("raw text in the SVG source")
	}
	if !strings.Contains(doc, "a&#34;b\\c&lt;d&gt;&amp;") {
		t.Error("escaped name not found in the SVG source")
	}
}

// randomWaitSnapshot makes a snapshot of n processes, some waiting on objects
// that others can wake, with the deadlocks findDeadlocks finds among them.
func randomWaitSnapshot(r *rand.Rand, n int) *Snapshot {
	s := &Snapshot{}
	kinds := []string{"pipe:", "msg:", "unix:", "mq:/q"}
	nobj := max(1, n/2)
	for p := 1; p <= n; p++ {
		s.Processes = append(s.Processes, Process{PID: 1000 + p, Comm: "proc-" + strconv.Itoa(p)})
	}
	for p := 1; p <= n; p++ {
		if r.IntN(4) == 0 {
			continue // a process that does not wait
		}
		for range 1 + r.IntN(2) {
			o := r.IntN(nobj)
			w := Wait{
				PID: 1000 + p, TID: 1000 + p, Comm: "proc-" + strconv.Itoa(p), Syscall: "read",
				Object: kinds[o%len(kinds)] + strconv.Itoa(100+o), For: "data", State: "empty",
			}
			for range 1 + r.IntN(2) {
				w.Wakers = append(w.Wakers, 1001+r.IntN(n))
			}
			slices.Sort(w.Wakers)
			w.Wakers = slices.Compact(w.Wakers)
			s.Waits = append(s.Waits, w)
		}
	}
	held := make([]bool, len(s.Waits))
	for i := range held {
		held[i] = true
	}
	s.Deadlocks = findDeadlocks(s.Waits, held)
	return s
}

// ringSnapshot: k processes in one cycle, each reading a pipe the next can write.
func ringSnapshot(k int) *Snapshot {
	s := &Snapshot{}
	var d Deadlock
	for i := range k {
		pid, next := 5000+i, 5000+(i+1)%k
		obj := "pipe:" + strconv.Itoa(500+i)
		s.Waits = append(s.Waits, Wait{PID: pid, TID: pid, Comm: "ring", Syscall: "read", Object: obj, For: "data", State: "empty", Wakers: []int{next}})
		d.Path = append(d.Path, Step{PID: pid, TID: pid, Comm: "ring", Syscall: "read", Object: obj})
	}
	s.Deadlocks = []Deadlock{d}
	return s
}

// starSnapshot: m processes waiting on one queue that a process that does not
// wait can fill.
func starSnapshot(m int) *Snapshot {
	s := &Snapshot{}
	for i := range m {
		s.Waits = append(s.Waits, Wait{PID: 10 + i, TID: 10 + i, Comm: "worker with a long name", Syscall: "msgrcv", Object: "msg:7", For: "data", Wakers: []int{9}})
	}
	return s
}

func TestSVGLayoutNoOverlap(t *testing.T) {
	check := func(name string, s *Snapshot) int {
		g := newWaitGraph(s)
		l := g.layout(svgMaxNodes)
		boxes := map[string]svgBox{}
		for i, nd := range g.nodes {
			if l.shown[i] {
				boxes[nd.key] = l.box[i]
			}
		}
		t.Run(name, func(t *testing.T) { checkNoOverlap(t, boxes) })
		return len(g.nodes)
	}
	seen := map[int]bool{}
	for k := 1; k <= 20; k++ {
		seen[check(fmt.Sprintf("ring-%d", k), ringSnapshot(k))] = true
	}
	for m := 1; m <= 38; m++ {
		seen[check(fmt.Sprintf("star-%d", m), starSnapshot(m))] = true
	}
	r := rand.New(rand.NewPCG(3, 4))
	for n := 2; n <= 30; n++ {
		for seed := range 3 {
			seen[check(fmt.Sprintf("random-%d-%d", n, seed), randomWaitSnapshot(r, n))] = true
		}
	}
	for n := 2; n <= 40; n++ {
		if !seen[n] {
			t.Errorf("no graph of %d nodes tried", n)
		}
	}
}

func TestWriteSVGBounded(t *testing.T) {
	// 70 waiters on one queue and a ring of 3: 72 + 6 nodes.
	s := starSnapshot(70)
	ring := ringSnapshot(3)
	s.Waits = append(s.Waits, ring.Waits...)
	s.Deadlocks = ring.Deadlocks
	doc := renderSVG(t, s)
	d := readSVG(t, doc)
	if !strings.Contains(d.title, "(12 nodes left out)") {
		t.Errorf("title %q does not say 12 nodes were left out", d.title)
	}
	if len(d.nodes) != 66 {
		t.Errorf("%d nodes drawn, want 66", len(d.nodes))
	}
	var dead int
	for _, cl := range d.nodes {
		if slices.Contains(cl, "deadlock") {
			dead++
		}
	}
	if dead != 6 {
		t.Errorf("%d deadlock nodes drawn, want 6", dead)
	}
	for e := range d.edges {
		from, to, _ := strings.Cut(e, " -> ")
		if _, ok := d.nodes[from]; !ok {
			t.Errorf("edge %s from a node not drawn", e)
		}
		if _, ok := d.nodes[to]; !ok {
			t.Errorf("edge %s to a node not drawn", e)
		}
	}
	checkNoOverlap(t, d.rects)
	// Crowded: only the deadlock's edges are labelled.
	if strings.Contains(d.text, "msgrcv") || !strings.Contains(d.text, "read (data)") {
		t.Errorf("edge labels in a crowded graph:\n%s", d.text)
	}
	// And the ring is drawn as a ring: its nodes are equally far from their
	// centre.
	var cx, cy float64
	var ringBoxes []svgBox
	for k, b := range d.rects {
		if slices.Contains(d.nodes[k], "deadlock") {
			ringBoxes = append(ringBoxes, b)
			cx += b.x / 6
			cy += b.y / 6
		}
	}
	r0 := math.Hypot(ringBoxes[0].x-cx, ringBoxes[0].y-cy)
	for _, b := range ringBoxes {
		if r := math.Hypot(b.x-cx, b.y-cy); math.Abs(r-r0) > 0.5 {
			t.Errorf("ring node at distance %.1f from the centre, another at %.1f", r, r0)
		}
	}
}
