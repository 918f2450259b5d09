package router

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// writeParameterStatus writes what parameterStatus returns, whether the
// message fits the writer's free space, fills it exactly, or is longer than
// the whole buffer.
func TestWriteParameterStatus(t *testing.T) {
	const size = 64
	for _, c := range []struct {
		used        int // bytes already buffered
		name, value string
	}{
		{0, "application_name", "pgbench"},
		{size - 1 - (4 + 1 + 1 + 1 + 1), "a", "b"}, // exactly fills it
		{size - 5, "shardline.lsn", "0/16B6F28"},   // must flush first
		{10, "long", strings.Repeat("v", 3*size)},  // longer than the buffer
	} {
		var out bytes.Buffer
		w := bufio.NewWriterSize(&out, size)
		w.Write(bytes.Repeat([]byte{'x'}, c.used))
		writeParameterStatus(w, c.name, c.value)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		want := append(bytes.Repeat([]byte{'x'}, c.used), parameterStatus(c.name, c.value)...)
		if !bytes.Equal(out.Bytes(), want) {
			t.Errorf("used %d, %s=%.10s: wrote %q, want %q", c.used, c.name, c.value, out.Bytes(), want)
		}
	}
}
