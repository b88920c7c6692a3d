// Package table lays out text tables: the one place where the module's aligned tables
// (ipcbench's result and breakdown tables, its list, compare's text and Markdown
// tables, and ebpf.WriteTable) get their column widths, alignment and separators.
//
// It sits at the bottom of the tree, beside sys and wait, because ebpf (a public
// package outside cmd/) renders a table too; it imports only the standard library.
package table

import (
	"io"
	"strings"
	"unicode/utf8"
)

// A Table is rows of cells laid out in columns two spaces apart, each as wide as its
// widest cell (counted in runes). Rows may be short; missing cells are empty.
type Table struct {
	// Right reports whether column i is right-aligned; nil aligns every column left.
	Right func(i int) bool
	// Indent starts every line of text output.
	Indent string
	rows   [][]string
}

// RightFrom right-aligns column first and every column after it.
func RightFrom(first int) func(int) bool {
	return func(i int) bool { return i >= first }
}

// Add appends a row.
func (t *Table) Add(cells ...string) { t.rows = append(t.rows, cells) }

// Len returns the number of rows added.
func (t *Table) Len() int { return len(t.rows) }

// WriteText writes the table as aligned text, one line a row, with no trailing spaces.
func (t *Table) WriteText(w io.Writer) error {
	width := t.widths(nil)
	var b strings.Builder
	for _, r := range t.rows {
		b.WriteString(t.Indent)
		for i := range width {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(t.pad(cell(r, i), i, width))
		}
		if _, err := io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n"); err != nil {
			return err
		}
		b.Reset()
	}
	return nil
}

// WriteMarkdown writes the table as a Markdown table whose first row is the header;
// a "|" in a cell is escaped and right-aligned columns are marked so.
func (t *Table) WriteMarkdown(w io.Writer) error {
	width := t.widths(mdEscape)
	var b strings.Builder
	for ri, r := range t.rows {
		for i := range width {
			b.WriteString("| " + t.pad(mdEscape(cell(r, i)), i, width) + " ")
		}
		b.WriteString("|\n")
		if ri == 0 {
			for i := range width {
				d := strings.Repeat("-", max(width[i], 3))
				if t.right(i) {
					d = d[:len(d)-1] + ":"
				}
				b.WriteString("| " + d + " ")
			}
			b.WriteString("|\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (t *Table) right(i int) bool { return t.Right != nil && t.Right(i) }

// widths returns every column's width in runes, of the cells as escape leaves them.
func (t *Table) widths(escape func(string) string) []int {
	ncol := 0
	for _, r := range t.rows {
		ncol = max(ncol, len(r))
	}
	width := make([]int, ncol)
	for _, r := range t.rows {
		for i, c := range r {
			if escape != nil {
				c = escape(c)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	return width
}

func (t *Table) pad(s string, i int, width []int) string {
	n := width[i] - utf8.RuneCountInString(s)
	if n <= 0 {
		return s
	}
	if t.right(i) {
		return strings.Repeat(" ", n) + s
	}
	return s + strings.Repeat(" ", n)
}

func cell(r []string, i int) string {
	if i < len(r) {
		return r[i]
	}
	return ""
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
