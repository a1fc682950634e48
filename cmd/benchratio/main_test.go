package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkGet/a_direct-2         	   10000	    100000 ns/op	    1000 B/op	      20 allocs/op
BenchmarkGet/b_bare-2           	   10000	    200000 ns/op	    4000 B/op	      80 allocs/op
BenchmarkGet/c_gateway-2        	   10000	    210000 ns/op	    5000 B/op	     100 allocs/op
BenchmarkGet/c_gateway-2        	   10000	    230000 ns/op	    5000 B/op	     100 allocs/op
BenchmarkPost/a_direct-2        	   10000	    100000 ns/op	    1000 B/op	      20 allocs/op
BenchmarkPost/b_bare-2          	   10000	    100000 ns/op	    1000 B/op	      20 allocs/op
BenchmarkPost/c_gateway-2       	   10000	    150000 ns/op	    1000 B/op	      20 allocs/op
BenchmarkPost/d_gateway_nocache-2	   10000	    300000 ns/op	    1000 B/op	      20 allocs/op
PASS
`

func TestRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		input    string
		wantErr  error
		contains []string
		absent   []string
	}{
		{
			name:  "ratios of medians",
			input: sample,
			// Get: c's median of two is 220000 -> c/b 1.10x, c/a 2.20x; Post: c/b 1.50x over.
			contains: []string{"BenchmarkGet (median of 2 run(s))", "1.10x", "2.20x", "c/b ns/op 1.10x: within the 1.10x target", "c/b ns/op 1.50x: OVER the 1.10x target",
				"(d_gateway_nocache, 2.00x of c's ns/op)"},
		},
		{
			name: "one disturbed run does not move the median",
			input: `BenchmarkGet/a_direct-2 1 100000 ns/op
BenchmarkGet/b_bare-2 1 200000 ns/op
BenchmarkGet/c_gateway-2 1 210000 ns/op
BenchmarkGet/a_direct-2 1 100000 ns/op
BenchmarkGet/b_bare-2 1 200000 ns/op
BenchmarkGet/c_gateway-2 1 900000 ns/op
BenchmarkGet/a_direct-2 1 100000 ns/op
BenchmarkGet/b_bare-2 1 200000 ns/op
BenchmarkGet/c_gateway-2 1 212000 ns/op
`,
			contains: []string{"median of 3 run(s)", "c/b ns/op 1.06x: within the 1.10x target"},
		},
		{
			name: "process CPU per request, where reported",
			input: `BenchmarkGet/a_direct-2 1 100000 ns/op 120000 cpu-ns/op
BenchmarkGet/b_bare-2 1 200000 ns/op 240000 cpu-ns/op
BenchmarkGet/c_gateway-2 1 210000 ns/op 252000 cpu-ns/op
`,
			contains: []string{"cpu-ns/op", "240000", "252000", "1.05x", "2.10x"},
		},
		{
			name: "the target is checked on the paired runs when present",
			input: sample + `BenchmarkPaired/get-2 1 500000 ns/op 240000 b-ns/op 260000 c-ns/op 1.083 c/b
BenchmarkPaired/post-2 1 500000 ns/op 240000 b-ns/op 290000 c-ns/op 1.208 c/b
BenchmarkPaired/get-2 1 500000 ns/op 250000 b-ns/op 270000 c-ns/op 1.080 c/b
BenchmarkPaired/post-2 1 500000 ns/op 250000 b-ns/op 280000 c-ns/op 1.120 c/b
BenchmarkPaired/get-2 1 500000 ns/op 260000 b-ns/op 300000 c-ns/op 1.154 c/b
BenchmarkPaired/post-2 1 500000 ns/op 260000 b-ns/op 270000 c-ns/op 1.038 c/b
`,
			// get: median 1.083 within; post: median 1.120 over. The separate runs' Post c/b of
			// 1.50x gets no verdict of its own.
			contains: []string{"BenchmarkPaired: b and c in turns, in blocks", "median of 3 run(s)", "250000", "270000",
				"get c/b 1.08x: within the 1.10x target", "post c/b 1.12x: OVER the 1.10x target",
				"1.08x to 1.15x", "1.04x to 1.21x"},
			absent: []string{"c/b ns/op 1.50x"},
		},
		{name: "strict checks the paired ratio", args: []string{"-strict", "-target", "1.13"},
			input: sample + "BenchmarkPaired/get-2 1 1 ns/op 10 b-ns/op 11 c-ns/op 1.1 c/b\n"},
		{name: "strict fails over target", args: []string{"-strict"}, input: sample, wantErr: errOverTarget},
		{name: "strict passes with a looser target", args: []string{"-strict", "-target", "1.6"}, input: sample},
		{name: "no benchmarks", input: "PASS\n", wantErr: errors.New("no benchmark")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := run(tt.args, strings.NewReader(tt.input), &out)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("run: %v", err)
			case tt.wantErr != nil && (err == nil || !strings.Contains(err.Error(), tt.wantErr.Error())):
				t.Fatalf("run error = %v, want %v", err, tt.wantErr)
			}
			for _, s := range tt.contains {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.absent {
				if strings.Contains(out.String(), s) {
					t.Errorf("output has %q:\n%s", s, out.String())
				}
			}
		})
	}
}
