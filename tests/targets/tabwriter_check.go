// tabwriter_check.go — the oracle for the alignment of Go's legacy text
// profiles (test_serve.py): reads a text, collapses each run of tabs to
// one, and writes it back through text/tabwriter as runtime/pprof sets it
// up for debug=1 (minwidth 1, tabwidth 8, padding 1, padded with tabs).
// A text aligned as Go aligns it comes out unchanged.
package main

import (
	"bufio"
	"os"
	"regexp"
	"text/tabwriter"
)

func main() {
	tabs := regexp.MustCompile("\t+")
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	tw := tabwriter.NewWriter(out, 1, 8, 1, '\t', 0)
	for in.Scan() {
		tw.Write([]byte(tabs.ReplaceAllString(in.Text(), "\t") + "\n"))
	}
	tw.Flush()
	out.Flush()
}
