package inspect

import (
	"cmp"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The wait-for graph as drawn: a node for each process that waits or can wake a
// wait, a node for each object waited on, an edge from a process to each object
// one of its threads waits on, and an edge from an object to each process that
// can make it ready. A deadlock's path is a cycle in it. WriteDOT and WriteSVG
// render the same waitGraph, built once by newWaitGraph.

// emptyGraphLabel is the label of a graph without waits.
const emptyGraphLabel = "no thread blocked in an IPC call"

// A waitGraph is the wait-for graph of a snapshot, ready to render.
type waitGraph struct {
	blocked   int // threads blocked (len(Snapshot.Waits))
	deadlocks int // len(Snapshot.Deadlocks)
	// nodes are the processes, by pid, then the objects, by ID.
	nodes []graphNode
	// edges are sorted by their ends' node indices.
	edges []graphEdge
	// cycles are the deadlocks' paths as node indices, in cycle order: process,
	// object, process, object, ... (a node appears once in a cycle).
	cycles [][]int
}

// A graphNode is a process or an object.
type graphNode struct {
	// key names the node, unique in the graph: "p:PID" or "o:" + object ID.
	key     string
	process bool
	pid     int    // a process's pid
	object  string // an object's ID
	// label is the text drawn, one line per element (cleaned: no control
	// characters, valid UTF-8).
	label []string
	// waits reports whether the process has a blocked thread.
	waits    bool
	deadlock bool
}

// A graphEdge is a wait (process → object) or a wake (object → process).
type graphEdge struct {
	from, to int // node indices
	wake     bool
	label    []string
	deadlock bool
}

// title gives the graph's one-line summary.
func (g *waitGraph) title() string {
	return fmt.Sprintf("wait-for graph: %s, %s",
		counted(g.blocked, "blocked thread", "blocked threads"),
		counted(g.deadlocks, "deadlock", "deadlocks"))
}

// cleanText makes s printable on one line: valid UTF-8, without control
// characters.
func cleanText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffe || r == 0xffff {
			return '\uFFFD'
		}
		return r
	}, s)
}

// processKey and objectKey are the node keys of a process and an object. An
// unknown object (a wait whose object could not be told) gets a node of its own
// for each process.
func processKey(pid int) string { return "p:" + strconv.Itoa(pid) }

func objectKey(pid int, id string) string {
	if id == "" {
		return "o:?" + strconv.Itoa(pid)
	}
	return "o:" + id
}

// newWaitGraph builds the wait-for graph of s.
func newWaitGraph(s *Snapshot) *waitGraph {
	g := &waitGraph{blocked: len(s.Waits), deadlocks: len(s.Deadlocks)}

	comms := map[int]string{}
	for _, p := range s.Processes {
		if p.Comm != "" {
			comms[p.PID] = p.Comm
		}
	}
	objects := map[string]*Object{}
	for i := range s.Objects {
		objects[s.Objects[i].ID] = &s.Objects[i]
	}

	// The nodes.
	type procInfo struct {
		comm  string
		waits bool
	}
	procs := map[int]*procInfo{}
	addProc := func(pid int, comm string) *procInfo {
		p := procs[pid]
		if p == nil {
			p = &procInfo{comm: comms[pid]}
			procs[pid] = p
		}
		if p.comm == "" {
			p.comm = comm
		}
		return p
	}
	type objInfo struct {
		id     string // "" for an unknown object
		states []string
	}
	objs := map[string]*objInfo{}
	addObj := func(key, id string) *objInfo {
		o := objs[key]
		if o == nil {
			o = &objInfo{id: id}
			objs[key] = o
		}
		return o
	}
	// The edges, keyed by their ends' keys; a wait edge counts its threads by
	// label.
	type edgeKey struct{ from, to string }
	type edgeInfo struct {
		wake     bool
		labels   []string
		count    map[string]int
		deadlock bool
	}
	edges := map[edgeKey]*edgeInfo{}
	addEdge := func(from, to string, wake bool) *edgeInfo {
		k := edgeKey{from, to}
		e := edges[k]
		if e == nil {
			e = &edgeInfo{wake: wake, count: map[string]int{}}
			edges[k] = e
		}
		return e
	}

	for _, w := range s.Waits {
		addProc(w.PID, w.Comm).waits = true
		pk, ok := processKey(w.PID), objectKey(w.PID, w.Object)
		o := addObj(ok, w.Object)
		if w.State != "" && !slices.Contains(o.states, w.State) {
			o.states = append(o.states, w.State)
		}
		var what []string
		if w.For != "" {
			what = append(what, w.For)
		}
		if w.Timed {
			what = append(what, "timed")
		}
		label := w.Syscall
		if label == "" {
			label = "?"
		}
		if len(what) > 0 {
			label += " (" + strings.Join(what, ", ") + ")"
		}
		e := addEdge(pk, ok, false)
		if e.count[label] == 0 {
			e.labels = append(e.labels, label)
		}
		e.count[label]++
		for _, q := range w.Wakers {
			addProc(q, "")
			addEdge(ok, processKey(q), true)
		}
	}

	// Deadlocks: mark their nodes and edges, adding what the waits lack (a
	// snapshot built by hand may name a step no wait describes).
	type cycleKeys []string
	var cycles []cycleKeys
	deadNodes := map[string]bool{}
	for _, d := range s.Deadlocks {
		var c cycleKeys
		for i, st := range d.Path {
			next := d.Path[(i+1)%len(d.Path)]
			pk, ok := processKey(st.PID), objectKey(st.PID, st.Object)
			addProc(st.PID, st.Comm).waits = true
			addObj(ok, st.Object)
			addProc(next.PID, next.Comm)
			e := addEdge(pk, ok, false)
			if len(e.labels) == 0 {
				label := cmp.Or(st.Syscall, "?")
				e.labels = append(e.labels, label)
				e.count[label] = 1
			}
			e.deadlock = true
			addEdge(ok, processKey(next.PID), true).deadlock = true
			deadNodes[pk], deadNodes[ok] = true, true
			for _, k := range []string{pk, ok} {
				if !slices.Contains(c, k) {
					c = append(c, k)
				}
			}
		}
		if len(c) > 0 {
			cycles = append(cycles, c)
		}
	}

	// Lay the nodes out in order: processes by pid, then objects by ID.
	pids := make([]int, 0, len(procs))
	for pid := range procs {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	index := map[string]int{}
	for _, pid := range pids {
		p := procs[pid]
		var label []string
		if p.comm != "" {
			label = append(label, cleanText(p.comm))
		}
		label = append(label, "pid "+strconv.Itoa(pid))
		k := processKey(pid)
		index[k] = len(g.nodes)
		g.nodes = append(g.nodes, graphNode{key: k, process: true, pid: pid, label: label, waits: p.waits, deadlock: deadNodes[k]})
	}
	okeys := make([]string, 0, len(objs))
	for k := range objs {
		okeys = append(okeys, k)
	}
	slices.Sort(okeys)
	for _, k := range okeys {
		o := objs[k]
		var label []string
		if o.id == "" {
			label = append(label, "unknown object")
		} else {
			label = append(label, cleanText(o.id))
			if obj := objects[o.id]; obj != nil {
				var kn []string
				if prefix, _, _ := strings.Cut(o.id, ":"); obj.Kind != "" && obj.Kind != prefix {
					kn = append(kn, obj.Kind)
				}
				if obj.Name != "" {
					kn = append(kn, obj.Name)
				}
				if len(kn) > 0 {
					label = append(label, cleanText(strings.Join(kn, " ")))
				}
			}
		}
		if len(o.states) > 0 {
			label = append(label, cleanText(strings.Join(o.states, ", ")))
		}
		index[k] = len(g.nodes)
		g.nodes = append(g.nodes, graphNode{key: k, object: o.id, label: label, deadlock: deadNodes[k]})
	}

	for k, e := range edges {
		ge := graphEdge{from: index[k.from], to: index[k.to], wake: e.wake, deadlock: e.deadlock}
		if e.wake {
			ge.label = []string{"can wake"}
		} else {
			for _, l := range e.labels {
				if n := e.count[l]; n > 1 {
					l += " ×" + strconv.Itoa(n)
				}
				ge.label = append(ge.label, cleanText(l))
			}
		}
		g.edges = append(g.edges, ge)
	}
	slices.SortFunc(g.edges, func(a, b graphEdge) int {
		return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.to, b.to))
	})
	for _, c := range cycles {
		var ci []int
		for _, k := range c {
			ci = append(ci, index[k])
		}
		g.cycles = append(g.cycles, ci)
	}
	return g
}

// dotQuote quotes s as a DOT string: backslashes and double quotes escaped.
func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`).Replace(s) + `"`
}

// dotLabel quotes the lines of a label as one DOT string, lines separated by \n.
func dotLabel(lines []string) string {
	q := make([]string, len(lines))
	for i, l := range lines {
		q[i] = strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(l)
	}
	return `"` + strings.Join(q, `\n`) + `"`
}

// WriteDOT writes the wait-for graph of s to w in the Graphviz DOT language, as
// the digraph "waitfor" (render it with, for example, dot -Tsvg).
//
// A box is a process ("comm\npid N") that waits or can wake a wait; an ellipse is
// an object waited on (its ID, kind and name, and state as the waiters read it).
// A solid edge goes from a process to an object one of its threads waits on,
// labelled with the call and what it waits for ("read (data)", "×N" when N
// threads of the process wait alike); a dashed edge labelled "can wake" goes
// from an object to each process that can make it ready. The nodes and edges of
// the deadlocks' cycles are red. The graph's label gives the number of blocked
// threads and of deadlocks. The output depends only on s.
func WriteDOT(w io.Writer, s *Snapshot) error {
	g := newWaitGraph(s)
	var b strings.Builder
	title := g.title()
	fmt.Fprintf(&b, "// %s\n", title)
	b.WriteString("digraph \"waitfor\" {\n")
	if len(g.nodes) == 0 {
		title = emptyGraphLabel
	}
	fmt.Fprintf(&b, "\tlabel=%s;\n\tlabelloc=\"t\";\n", dotQuote(title))
	b.WriteString("\tnode [fontname=\"Helvetica\", fontsize=11];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=10];\n")
	const red = `, color="red", fontcolor="red", penwidth=2`
	for _, n := range g.nodes {
		shape := "ellipse"
		if n.process {
			shape = "box"
		}
		fmt.Fprintf(&b, "\t%s [shape=%s, label=%s", dotQuote(n.key), shape, dotLabel(n.label))
		if n.deadlock {
			b.WriteString(red)
		}
		b.WriteString("];\n")
	}
	for _, e := range g.edges {
		fmt.Fprintf(&b, "\t%s -> %s [label=%s", dotQuote(g.nodes[e.from].key), dotQuote(g.nodes[e.to].key), dotLabel(e.label))
		if e.wake {
			b.WriteString(`, style="dashed"`)
		}
		if e.deadlock {
			b.WriteString(red)
		}
		b.WriteString("];\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// SVG drawing.
const (
	svgMaxNodes  = 60   // nodes drawn besides the deadlocks'
	svgMaxRunes  = 36   // a label line longer is cut
	svgFontSize  = 11.0 // node and edge labels (monospace)
	svgCharWidth = 6.8  // an estimate of a monospace character's advance at svgFontSize
	svgLineH     = 14.0
	svgPadX      = 8.0
	svgPadY      = 6.0
	svgGap       = 24.0  // the least room between two node boxes
	svgRingGap   = 40.0  // the least room between two nodes on a ring, for edge labels
	svgColumnGap = 150.0 // room between columns, for edge labels
	svgMargin    = 16.0
	svgTitleH    = 30.0
	svgRowWidth  = 1200.0 // rings are placed in rows up to this wide
	// svgMaxEdgeLabels is the most edges drawn with all their labels; beyond,
	// only the deadlocks' edges are labelled.
	svgMaxEdgeLabels = 20
)

// A svgBox is a node's place: its centre and size.
type svgBox struct{ x, y, w, h float64 }

func (a svgBox) overlaps(b svgBox) bool {
	return math.Abs(a.x-b.x) < (a.w+b.w)/2 && math.Abs(a.y-b.y) < (a.h+b.h)/2
}

// A svgLayout is where WriteSVG draws a waitGraph's nodes.
type svgLayout struct {
	shown   []bool     // by node index: drawn
	box     []svgBox   // by node index, for nodes shown
	lines   [][]string // by node index: the label as drawn (long lines cut)
	ring    []bool     // by edge index: the edge joins neighbours on a ring
	omitted int        // nodes not drawn
}

// truncLine cuts a label line to svgMaxRunes.
func truncLine(s string) string {
	if utf8.RuneCountInString(s) <= svgMaxRunes {
		return s
	}
	r := []rune(s)
	return string(r[:svgMaxRunes-1]) + "…"
}

// nodeSize is the size of a node drawn with the given label lines.
func nodeSize(process bool, lines []string) (w, h float64) {
	runes := 0
	for _, l := range lines {
		runes = max(runes, utf8.RuneCountInString(l))
	}
	tw, th := float64(runes)*svgCharWidth, float64(len(lines))*svgLineH
	if process {
		return tw + 2*svgPadX, th + 2*svgPadY
	}
	// An ellipse around the text's box: half axes √2 times the box's halves.
	return math.Sqrt2 * (tw + svgPadX), math.Sqrt2 * (th + svgPadY)
}

// layout places g's nodes: each deadlock's cycle on a ring of its own (process,
// object, process, ... clockwise from the top), the rings side by side in rows;
// below them the other nodes in three columns, waiting processes | objects |
// processes that only wake, the first in the order the waits reach them, a
// later one level with its neighbours in the earlier ones. At most limit nodes
// besides the deadlocks' (every deadlock node is on a cycle) are drawn.
func (g *waitGraph) layout(limit int) *svgLayout {
	n := len(g.nodes)
	l := &svgLayout{shown: make([]bool, n), box: make([]svgBox, n), lines: make([][]string, n), ring: make([]bool, len(g.edges))}
	for i, nd := range g.nodes {
		for _, s := range nd.label {
			l.lines[i] = append(l.lines[i], truncLine(s))
		}
		l.box[i].w, l.box[i].h = nodeSize(nd.process, l.lines[i])
	}
	placed := make([]bool, n)
	out := map[int][]int{} // node → the nodes its edges go to
	for _, e := range g.edges {
		out[e.from] = append(out[e.from], e.to)
	}

	// The rings.
	var rings [][]int
	for _, c := range g.cycles {
		var r []int
		for _, i := range c {
			if !placed[i] {
				placed[i] = true
				r = append(r, i)
			}
		}
		if len(r) > 0 {
			rings = append(rings, r)
		}
	}
	x, y, rowH := 0.0, 0.0, 0.0
	for _, r := range rings {
		var W, H float64
		for _, i := range r {
			W, H = max(W, l.box[i].w), max(H, l.box[i].h)
		}
		R := ringRadius(l.box, r)
		rw, rh := 2*R+W, 2*R+H
		if x > 0 && x+rw > svgRowWidth {
			x, y, rowH = 0, y+rowH+svgGap, 0
		}
		ringPlace(l.box, r, R, x+rw/2, y+rh/2)
		for _, i := range r {
			l.shown[i] = true
		}
		x += rw + svgGap
		rowH = max(rowH, rh)
	}
	top := 0.0
	if len(rings) > 0 {
		top = y + rowH + 2*svgGap
	}

	// The other nodes, in the order the waits reach them: each waiting process
	// by pid, the objects it waits on, the processes that can wake those.
	var order []int
	take := func(i int) {
		if !placed[i] {
			placed[i] = true
			order = append(order, i)
		}
	}
	for i, nd := range g.nodes {
		if nd.process && nd.waits {
			take(i)
			for _, o := range out[i] {
				take(o)
				for _, q := range out[o] {
					take(q)
				}
			}
		}
	}
	for i := range g.nodes {
		take(i)
	}
	if len(order) > limit {
		l.omitted = len(order) - limit
		order = order[:limit]
	}
	var cols [3][]int
	for _, i := range order {
		l.shown[i] = true
		c := 1
		if nd := g.nodes[i]; nd.process && nd.waits {
			c = 0
		} else if nd.process {
			c = 2
		}
		cols[c] = append(cols[c], i)
	}
	// The first column is stacked from the top; a node of a later column goes
	// level with the middle of its neighbours in earlier columns (in that
	// order), or if that place is taken, just below the node above it.
	near := map[int][]int{}
	for _, e := range g.edges {
		near[e.from] = append(near[e.from], e.to)
		near[e.to] = append(near[e.to], e.from)
	}
	inGrid := make([]bool, n)
	x = 0
	for _, col := range cols {
		if len(col) == 0 {
			continue
		}
		var W float64
		want := map[int]float64{}
		for _, i := range col {
			W = max(W, l.box[i].w)
			sum, k := 0.0, 0
			for _, j := range near[i] {
				if inGrid[j] {
					sum += l.box[j].y
					k++
				}
			}
			want[i] = math.Inf(1)
			if k > 0 {
				want[i] = sum / float64(k)
			}
		}
		slices.SortStableFunc(col, func(a, b int) int { return cmp.Compare(want[a], want[b]) })
		y := top
		for _, i := range col {
			if w := want[i] - l.box[i].h/2; !math.IsInf(w, 1) {
				y = max(y, w)
			}
			l.box[i].x, l.box[i].y = x+W/2, y+l.box[i].h/2
			y += l.box[i].h + svgGap
		}
		for _, i := range col {
			inGrid[i] = true
		}
		x += W + svgColumnGap
	}

	// Edges between neighbours on a ring follow it.
	for _, r := range rings {
		next := map[[2]int]bool{}
		for j := range r {
			next[[2]int{r[j], r[(j+1)%len(r)]}] = true
		}
		for k, e := range g.edges {
			if next[[2]int{e.from, e.to}] {
				l.ring[k] = true
			}
		}
	}
	return l
}

// ringPlace puts the nodes r on a circle of radius R around (cx, cy), the
// first at the top, clockwise.
func ringPlace(box []svgBox, r []int, R, cx, cy float64) {
	for j, i := range r {
		a := -math.Pi/2 + 2*math.Pi*float64(j)/float64(len(r))
		box[i].x, box[i].y = cx+R*math.Cos(a), cy+R*math.Sin(a)
	}
}

// ringRadius is the smallest radius (to a pixel) at which the nodes r, placed by
// ringPlace, are all at least svgRingGap apart.
func ringRadius(box []svgBox, r []int) float64 {
	if len(r) < 2 {
		return 0
	}
	var W, H float64
	for _, i := range r {
		W, H = max(W, box[i].w), max(H, box[i].h)
	}
	// Neighbours are a chord 2R·sin(π/k) apart, other nodes farther; boxes whose
	// centres are at least their diagonal apart do not overlap: hi is enough.
	hi := (math.Hypot(W, H) + svgRingGap) / 2 / math.Sin(math.Pi/float64(len(r)))
	// Scaling the circle moves every two nodes apart along both axes, so the
	// radii that are enough are those above some least one.
	apart := func(R float64) bool {
		ringPlace(box, r, R, 0, 0)
		for j, a := range r {
			for _, b := range r[j+1:] {
				A, B := box[a], box[b]
				if math.Abs(A.x-B.x) < (A.w+B.w)/2+svgRingGap && math.Abs(A.y-B.y) < (A.h+B.h)/2+svgRingGap {
					return false
				}
			}
		}
		return true
	}
	lo := 0.0
	for hi-lo > 1 {
		if m := (lo + hi) / 2; apart(m) {
			hi = m
		} else {
			lo = m
		}
	}
	return math.Ceil(hi)
}

// svgNum formats a coordinate.
func svgNum(v float64) string {
	if v == 0 { // (and -0)
		return "0"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// svgEsc escapes text for an SVG (XML) document.
func svgEsc(s string) string { return html.EscapeString(s) }

// clip returns where the ray from b's centre in direction (ux, uy) (a unit
// vector) leaves the node's outline: a rectangle, or for an object an ellipse.
func clip(b svgBox, process bool, ux, uy float64) (float64, float64) {
	var t float64
	if process {
		t = math.Inf(1)
		if ux != 0 {
			t = b.w / 2 / math.Abs(ux)
		}
		if uy != 0 {
			t = min(t, b.h/2/math.Abs(uy))
		}
	} else {
		rx, ry := b.w/2, b.h/2
		t = 1 / math.Sqrt(ux*ux/(rx*rx)+uy*uy/(ry*ry))
	}
	return b.x + t*ux, b.y + t*uy
}

// svgBounds grows to hold what is drawn.
type svgBounds struct{ x0, y0, x1, y1 float64 }

func (b *svgBounds) add(x0, y0, x1, y1 float64) {
	b.x0, b.y0, b.x1, b.y1 = min(b.x0, x0), min(b.y0, y0), max(b.x1, x1), max(b.y1, y1)
}

// svgStyle is the default look; a host page can restyle the classes.
const svgStyle = `svg.waitfor { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 11px; background: #fff; }
svg.waitfor .title { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; font-weight: 600; fill: #222; }
svg.waitfor .subtitle { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 12px; fill: #555; }
svg.waitfor .node rect, svg.waitfor .node ellipse { stroke: #555; stroke-width: 1.2px; }
svg.waitfor .node.process rect { fill: #e8f0fb; }
svg.waitfor .node.object ellipse { fill: #fbf5e2; }
svg.waitfor .node text { fill: #111; text-anchor: middle; }
svg.waitfor .edge path { fill: none; stroke: #777; stroke-width: 1.2px; }
svg.waitfor .edge.wake path { stroke-dasharray: 5 4; }
svg.waitfor .edge text { fill: #333; font-size: 10px; text-anchor: middle; paint-order: stroke; stroke: #fff; stroke-width: 3px; stroke-linejoin: round; }
svg.waitfor .node.deadlock rect, svg.waitfor .node.deadlock ellipse, svg.waitfor .edge.deadlock path { stroke: #d00; stroke-width: 2px; }
svg.waitfor .edge.deadlock text { fill: #b00; }
svg.waitfor .node.deadlock text { fill: #900; }
svg.waitfor marker path { fill: #777; stroke: none; }
svg.waitfor marker.deadlock path { fill: #d00; }
`

// WriteSVG writes the wait-for graph of s to w as a self-contained SVG document
// (no scripts, no external resources): the graph WriteDOT describes, laid out
// without Graphviz.
//
// Each deadlock's cycle is drawn as a ring, process and object alternating
// clockwise from the top; the other nodes stand below in three columns: waiting
// processes, objects, processes that only wake (a node of a later column level
// with its neighbours). Processes are boxes, objects ellipses; wait edges are
// solid arrows, "can wake" edges dashed; a legend line follows the title.
//
// The root element has class "chart waitfor"; every node is a group of class
// "mark node process" or "mark node object", every edge one of class "mark edge
// wait" or "mark edge wake", with "deadlock" added on the deadlocks' cycles.
// Nodes carry data-id (their key: "p:PID" or "o:" + object ID), edges data-from
// and data-to, and each a tooltip; when more than 20 edges are drawn, only the
// deadlocks' edges show their label. An inline style sheet, scoped to
// svg.waitfor, gives default colours. Besides the deadlocks' nodes, at most 60
// are drawn; the title says how many were left out. The output depends only on
// s.
func WriteSVG(w io.Writer, s *Snapshot) error {
	g := newWaitGraph(s)
	l := g.layout(svgMaxNodes)
	title := g.title()
	if l.omitted > 0 {
		title += fmt.Sprintf(" (%s left out)", counted(l.omitted, "node", "nodes"))
	}

	bounds := svgBounds{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for i := range g.nodes {
		if l.shown[i] {
			b := l.box[i]
			bounds.add(b.x-b.w/2, b.y-b.h/2, b.x+b.w/2, b.y+b.h/2)
		}
	}
	drawn := 0
	for _, e := range g.edges {
		if l.shown[e.from] && l.shown[e.to] {
			drawn++
		}
	}
	var edges, nodes strings.Builder
	for k, e := range g.edges {
		if !l.shown[e.from] || !l.shown[e.to] {
			continue
		}
		a, b := l.box[e.from], l.box[e.to]
		dx, dy := b.x-a.x, b.y-a.y
		d := math.Hypot(dx, dy)
		if d == 0 {
			continue
		}
		// A quadratic curve bending to the left of its direction (on screen):
		// two edges between the same nodes bend apart, and a ring's edges bend
		// outward, along the ring.
		nx, ny := dy/d, -dx/d
		bend := min(0.15*d, 60)
		if l.ring[k] {
			bend = max(bend, d/2*0.5)
		}
		cx, cy := (a.x+b.x)/2+nx*bend, (a.y+b.y)/2+ny*bend
		ux, uy := cx-a.x, cy-a.y
		un := math.Hypot(ux, uy)
		x0, y0 := clip(a, g.nodes[e.from].process, ux/un, uy/un)
		vx, vy := cx-b.x, cy-b.y
		vn := math.Hypot(vx, vy)
		x1, y1 := clip(b, g.nodes[e.to].process, vx/vn, vy/vn)
		bounds.add(min(x0, x1, cx), min(y0, y1, cy), max(x0, x1, cx), max(y0, y1, cy))
		class, marker := "mark edge wait", "waitfor-arrow"
		if e.wake {
			class = "mark edge wake"
		}
		if e.deadlock {
			class += " deadlock"
			marker = "waitfor-arrow-deadlock"
		}
		from, to := g.nodes[e.from], g.nodes[e.to]
		fmt.Fprintf(&edges, "<g class=\"%s\" data-from=\"%s\" data-to=\"%s\"><title>%s</title>", class, svgEsc(from.key), svgEsc(to.key),
			svgEsc(strings.Join(from.label, " ")+" → "+strings.Join(to.label, " ")+": "+strings.Join(e.label, ", ")))
		fmt.Fprintf(&edges, "<path d=\"M%s,%s Q%s,%s %s,%s\" marker-end=\"url(#%s)\"/>", svgNum(x0), svgNum(y0), svgNum(cx), svgNum(cy), svgNum(x1), svgNum(y1), marker)
		// The label at the curve's middle; in a crowded graph only a deadlock's
		// edges have one drawn (the others' are their tooltips).
		if drawn > svgMaxEdgeLabels && !e.deadlock {
			edges.WriteString("</g>\n")
			continue
		}
		mx, my := (x0+2*cx+x1)/4, (y0+2*cy+y1)/4
		var lines []string
		width := 0
		for _, s := range e.label {
			s = truncLine(s)
			lines = append(lines, s)
			width = max(width, utf8.RuneCountInString(s))
		}
		ly := my - float64(len(lines)-1)*svgLineH/2 + 3.5
		edges.WriteString("<text>")
		for j, s := range lines {
			fmt.Fprintf(&edges, "<tspan x=\"%s\" y=\"%s\">%s</tspan>", svgNum(mx), svgNum(ly+float64(j)*svgLineH), svgEsc(s))
		}
		edges.WriteString("</text></g>\n")
		hw := float64(width) * svgCharWidth * 10 / svgFontSize / 2
		bounds.add(mx-hw, ly-svgLineH, mx+hw, ly+float64(len(lines))*svgLineH)
	}
	for i, nd := range g.nodes {
		if !l.shown[i] {
			continue
		}
		b := l.box[i]
		class := "mark node object"
		if nd.process {
			class = "mark node process"
		}
		if nd.deadlock {
			class += " deadlock"
		}
		fmt.Fprintf(&nodes, "<g class=\"%s\" data-id=\"%s\"><title>%s</title>", class, svgEsc(nd.key), svgEsc(strings.Join(nd.label, "\n")))
		if nd.process {
			fmt.Fprintf(&nodes, "<rect x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\" rx=\"3\"/>", svgNum(b.x-b.w/2), svgNum(b.y-b.h/2), svgNum(b.w), svgNum(b.h))
		} else {
			fmt.Fprintf(&nodes, "<ellipse cx=\"%s\" cy=\"%s\" rx=\"%s\" ry=\"%s\"/>", svgNum(b.x), svgNum(b.y), svgNum(b.w/2), svgNum(b.h/2))
		}
		lines := l.lines[i]
		ly := b.y - float64(len(lines))*svgLineH/2 + svgLineH - 3.5
		nodes.WriteString("<text>")
		for j, s := range lines {
			fmt.Fprintf(&nodes, "<tspan x=\"%s\" y=\"%s\">%s</tspan>", svgNum(b.x), svgNum(ly+float64(j)*svgLineH), svgEsc(s))
		}
		nodes.WriteString("</text></g>\n")
	}

	// The title above everything drawn.
	subtitle := "box: process · ellipse: object · solid arrow: waits on · dashed: can wake · red: deadlock"
	if drawn > svgMaxEdgeLabels {
		subtitle += " · hover an edge for its call"
	}
	if len(g.nodes) == 0 {
		subtitle = emptyGraphLabel
		bounds.add(0, 0, 0, 0)
	}
	tx, ty := bounds.x0, bounds.y0-svgTitleH
	if subtitle != "" {
		ty -= 20
	}
	bounds.add(tx, ty, tx+float64(utf8.RuneCountInString(title))*8, ty)
	if subtitle != "" {
		bounds.add(tx, ty, tx+float64(utf8.RuneCountInString(subtitle))*7, ty)
	}
	vx, vy := bounds.x0-svgMargin, bounds.y0-svgMargin
	vw, vh := bounds.x1-bounds.x0+2*svgMargin, bounds.y1-bounds.y0+2*svgMargin
	// Whole pixels, so that width and height match the view box.
	vw, vh = math.Ceil(vw), math.Ceil(vh)

	var b strings.Builder
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart waitfor\" width=\"%s\" height=\"%s\" viewBox=\"%s %s %s %s\" role=\"img\" aria-label=\"%s\">\n",
		svgNum(vw), svgNum(vh), svgNum(vx), svgNum(vy), svgNum(vw), svgNum(vh), svgEsc(title))
	fmt.Fprintf(&b, "<title>%s</title>\n", svgEsc(title))
	fmt.Fprintf(&b, "<style>\n%s</style>\n", svgStyle)
	b.WriteString("<defs>\n")
	for _, m := range []struct{ id, class string }{{"waitfor-arrow", "arrow"}, {"waitfor-arrow-deadlock", "arrow deadlock"}} {
		fmt.Fprintf(&b, "<marker id=\"%s\" class=\"%s\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"9\" markerHeight=\"9\" markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker>\n", m.id, m.class)
	}
	b.WriteString("</defs>\n")
	fmt.Fprintf(&b, "<text class=\"title\" x=\"%s\" y=\"%s\">%s</text>\n", svgNum(tx), svgNum(ty+14), svgEsc(title))
	if subtitle != "" {
		fmt.Fprintf(&b, "<text class=\"subtitle\" x=\"%s\" y=\"%s\">%s</text>\n", svgNum(tx), svgNum(ty+36), svgEsc(subtitle))
	}
	// Edges first, so that nodes cover their ends.
	b.WriteString(edges.String())
	b.WriteString(nodes.String())
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
