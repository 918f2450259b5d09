package netloop

import (
	"bytes"
	"runtime"
	"strconv"
	"testing"
)

// goroutineID is the id of the calling goroutine, from its stack header
// ("goroutine 7 [running]:").
func goroutineID() int {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, _ := strconv.Atoi(string(b[:bytes.IndexByte(b, ' ')]))
	return id
}

// A task that starts after another has returned runs on its coroutine;
// tasks that run at once get coroutines of their own; and Run ends the
// idle coroutines before it returns.
func TestTasksReuseCoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	l, err := New(Config{NoIOUring: true})
	if err != nil {
		t.Fatal(err)
	}
	done := run(l)

	// One after another: the same coroutine every time.
	ids := map[int]bool{}
	for range 5 {
		got := make(chan int)
		l.Go(func(*Task) { got <- goroutineID() })
		ids[<-got] = true
	}
	if len(ids) != 1 {
		t.Fatalf("5 tasks one after another ran on %d coroutines, want 1", len(ids))
	}

	// At once: all parked together, so each has its own.
	const n = 3
	tasks := make(chan *Task, n)
	idc := make(chan int, n)
	for range n {
		l.Go(func(task *Task) {
			idc <- goroutineID()
			tasks <- task
			for task.Park() == nil { // until the loop closes
			}
		})
	}
	at := map[int]bool{}
	for range n {
		at[<-idc] = true
		<-tasks
	}
	if len(at) != n {
		t.Fatalf("%d tasks at once ran on %d coroutines, want %d", n, len(at), n)
	}

	l.Close()
	<-done
	// Every coroutine has ended: the loop's goroutine count is back.
	for i := 0; runtime.NumGoroutine() > before; i++ {
		if i == 1000 {
			t.Fatalf("%d goroutines after Run returned, %d before New", runtime.NumGoroutine(), before)
		}
		runtime.Gosched() // the ended goroutines' exits
	}
}
