package batcher

import (
	"slices"
	"testing"
)

func TestWaitQueue(t *testing.T) {
	ws := make([]*waiter, 8)
	for i := range ws {
		ws[i] = &waiter{size: i}
	}
	tests := []struct {
		name string
		ops  string // p: push the next waiter, o: pop, r<i>: remove waiter i
		want []int  // sizes left, in order
	}{
		{name: "fifo", ops: "pppo", want: []int{1, 2}},
		{name: "empty", ops: "ppoo", want: nil},
		{name: "remove middle", ops: "pppr1", want: []int{0, 2}},
		{name: "remove head", ops: "pppr0", want: []int{1, 2}},
		{name: "remove last", ops: "pppr2o", want: []int{1}},
		{name: "remove missing", ops: "ppr5", want: []int{0, 1}},
		{name: "reuse popped room", ops: "ppppoopppp", want: []int{2, 3, 4, 5, 6, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q waitQueue
			next := 0
			for i := 0; i < len(tt.ops); i++ {
				switch tt.ops[i] {
				case 'p':
					q.push(ws[next])
					next++
				case 'o':
					q.pop()
				case 'r':
					i++
					q.remove(ws[tt.ops[i]-'0'])
				}
			}
			var got []int
			for q.len() > 0 {
				got = append(got, q.pop().size)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("left %v, want %v", got, tt.want)
			}
		})
	}
}
