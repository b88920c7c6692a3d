package table

import (
	"strings"
	"testing"
)

func render(t *testing.T, tb *Table, md bool) string {
	t.Helper()
	var b strings.Builder
	var err error
	if md {
		err = tb.WriteMarkdown(&b)
	} else {
		err = tb.WriteText(&b)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestText(t *testing.T) {
	indented := Table{Right: RightFrom(1), Indent: "> "}
	indented.Add("", "a", "µs")
	indented.Add("long name", "12345")
	indented.Add("x", "", "")
	var left Table
	left.Add("NAME", "NOTE")
	left.Add("unavailable-thing", "")
	left.Add("a", "b")
	for _, c := range []struct {
		tb   *Table
		want string
	}{
		{&indented, ">                a  µs\n> long name  12345\n> x\n"},
		{&left, "NAME               NOTE\nunavailable-thing\na                  b\n"},
	} {
		if got := render(t, c.tb, false); got != c.want {
			t.Errorf("got\n%q\nwant\n%q", got, c.want)
		}
	}
	if indented.Len() != 3 {
		t.Errorf("Len = %d", indented.Len())
	}
}

func TestMarkdown(t *testing.T) {
	tb := Table{Right: RightFrom(1)}
	tb.Add("k", "value")
	tb.Add("a|b", "1")
	want := "" +
		"| k    | value |\n" +
		"| ---- | ----: |\n" +
		"| a\\|b |     1 |\n"
	if got := render(t, &tb, true); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestEmpty(t *testing.T) {
	var tb Table
	if got := render(t, &tb, false) + render(t, &tb, true); got != "" {
		t.Errorf("empty table wrote %q", got)
	}
}
