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
	}{
		{
			name:  "ratios of medians",
			input: sample,
			// Get: c's median of two is 220000 -> c/b 1.10x, c/a 2.20x; Post: c/b 1.50x over.
			contains: []string{"BenchmarkGet (median of 2 run(s))", "1.10x", "2.20x", "c/b ns/op within the 1.10x target", "1.50x", "c/b ns/op OVER the 1.10x target",
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
			contains: []string{"median of 3 run(s)", "1.06x", "c/b ns/op within the 1.10x target"},
		},
		{
			name: "process CPU per request, where reported",
			input: `BenchmarkGet/a_direct-2 1 100000 ns/op 120000 cpu-ns/op
BenchmarkGet/b_bare-2 1 200000 ns/op 240000 cpu-ns/op
BenchmarkGet/c_gateway-2 1 210000 ns/op 252000 cpu-ns/op
`,
			contains: []string{"cpu-ns/op", "240000", "252000", "1.05x", "2.10x"},
		},
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
		})
	}
}
