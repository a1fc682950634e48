// Command benchratio reads `go test -bench` output on stdin and prints, for each benchmark that
// has the sub-benchmarks a_direct, b_bare and c_gateway, the gateway's ratios to the bare
// grpc-gateway mux (c/b, the 1.10x target) and to a direct gRPC call (c/a), for ns/op, B/op and
// allocs/op. Other sub-benchmarks named x_<variant> (d_gateway_nocache) are listed after them
// with their ns/op as a ratio of c's. Repeated runs (-count) give their median. A benchmark that
// reports "cpu-ns/op" (the process's CPU time per request) gets that column too.
//
//	go test -run '^$' -bench . -benchmem ./gateway/bench | go run ./cmd/benchratio
//
// Flags: -target (default 1.10) is the c/b ratio of ns/op the report checks against; -strict
// makes the command exit 1 when a benchmark is over it (off by default: the report informs).
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

// errOverTarget is returned with -strict when a ratio is over the target.
var errOverTarget = errors.New("the gateway is over its target")

// metrics are the figures of one sub-benchmark: the median over its n runs.
type metrics struct {
	n                                     int
	nsPerOp, cpuPerOp, bytesPerOp, allocs float64
	// pairedB, pairedC and pairedRatio are a paired benchmark's b-ns/op, c-ns/op and c/b;
	// ratioMin and ratioMax the lowest and highest c/b of the runs.
	pairedB, pairedC, pairedRatio float64
	ratioMin, ratioMax            float64
}

// figures are m's fields by the unit a benchmark line gives them in.
func (m *metrics) figures() map[string]*float64 {
	return map[string]*float64{
		"ns/op": &m.nsPerOp, "cpu-ns/op": &m.cpuPerOp, "B/op": &m.bytesPerOp, "allocs/op": &m.allocs,
		"b-ns/op": &m.pairedB, "c-ns/op": &m.pairedC, "c/b": &m.pairedRatio,
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("benchratio", flag.ContinueOnError)
	target := fs.Float64("target", 1.10, "c/b ratio of ns/op to check against")
	strict := fs.Bool("strict", false, "exit 1 when over the target")
	if err := fs.Parse(args); err != nil {
		return err
	}
	results, err := parse(in)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(results))
	for name := range results {
		names = append(names, name)
	}
	sort.Strings(names)
	paired := results[pairedName]
	over := false
	found := false
	for _, name := range names {
		subs := results[name]
		a, okA := subs["a_direct"]
		b, okB := subs["b_bare"]
		c, okC := subs["c_gateway"]
		if !okA || !okB || !okC {
			continue
		}
		found = true
		fmt.Fprintf(out, "\n%s (median of %d run(s))\n", name, c.n)
		fmt.Fprintf(out, "  %-12s %12s %12s %10s %10s\n", "", "ns/op", "cpu-ns/op", "B/op", "allocs/op")
		for _, row := range []struct {
			label string
			m     metrics
		}{{"a direct", a}, {"b bare", b}, {"c gateway", c}} {
			fmt.Fprintf(out, "  %-12s %12.0f %12s %10.0f %10.0f\n", row.label, row.m.nsPerOp, figure(row.m.cpuPerOp), row.m.bytesPerOp, row.m.allocs)
		}
		fmt.Fprintf(out, "  %-12s %12s %12s %10s %10s\n", "c/b", ratio(c.nsPerOp, b.nsPerOp), ratio(c.cpuPerOp, b.cpuPerOp), ratio(c.bytesPerOp, b.bytesPerOp), ratio(c.allocs, b.allocs))
		fmt.Fprintf(out, "  %-12s %12s %12s %10s %10s\n", "c/a", ratio(c.nsPerOp, a.nsPerOp), ratio(c.cpuPerOp, a.cpuPerOp), ratio(c.bytesPerOp, a.bytesPerOp), ratio(c.allocs, a.allocs))
		for _, sub := range extraSubs(subs) { // variants of the gateway, against c
			m := subs[sub]
			fmt.Fprintf(out, "  %-12s %12.0f %12s %10.0f %10.0f   (%s, %s of c's ns/op)\n", sub[:1]+" "+sub[2:], m.nsPerOp, figure(m.cpuPerOp), m.bytesPerOp, m.allocs, sub, ratio(m.nsPerOp, c.nsPerOp))
		}
		if len(paired) > 0 { // the target is checked on the paired runs
			continue
		}
		if verdict(out, "c/b ns/op", c.nsPerOp/b.nsPerOp, *target) {
			over = true
		}
	}
	if len(paired) > 0 {
		found = true
		subs := make([]string, 0, len(paired))
		for sub := range paired {
			subs = append(subs, sub)
		}
		sort.Strings(subs)
		fmt.Fprintf(out, "\n%s: b and c in turns, in blocks of requests (median of %d run(s))\n", pairedName, paired[subs[0]].n)
		fmt.Fprintf(out, "  %-12s %12s %12s %8s   %s\n", "", "b ns/op", "c ns/op", "c/b", "c/b of the runs")
		for _, sub := range subs {
			m := paired[sub]
			fmt.Fprintf(out, "  %-12s %12.0f %12.0f %7.2fx   %.2fx to %.2fx\n", sub, m.pairedB, m.pairedC, m.pairedRatio, m.ratioMin, m.ratioMax)
		}
		for _, sub := range subs {
			if verdict(out, sub+" c/b", paired[sub].pairedRatio, *target) {
				over = true
			}
		}
	}
	if !found {
		return errors.New("no benchmark with a_direct, b_bare and c_gateway sub-benchmarks in the input")
	}
	if over && *strict {
		return errOverTarget
	}
	return nil
}

// pairedName is the benchmark whose sub-benchmarks report b-ns/op, c-ns/op and c/b: the two
// fronts measured in turns within one run. When the input has it, the target is checked on
// its c/b (a slow spell of the machine falls on both fronts alike) rather than on the ratio
// of the separate b_bare and c_gateway sub-benchmarks, which run seconds apart.
const pairedName = "BenchmarkPaired"

// verdict prints whether ratio is within target and reports whether it is over.
func verdict(out io.Writer, what string, ratio, target float64) bool {
	word := "within"
	if ratio > target {
		word = "OVER"
	}
	fmt.Fprintf(out, "  %s %.2fx: %s the %.2fx target\n", what, ratio, word, target)
	return ratio > target
}

// extraSubs are the sub-benchmarks other than a_direct, b_bare and c_gateway, sorted.
func extraSubs(subs map[string]metrics) []string {
	var out []string
	for sub := range subs {
		switch sub {
		case "a_direct", "b_bare", "c_gateway":
		default:
			if len(sub) > 2 && sub[1] == '_' {
				out = append(out, sub)
			}
		}
	}
	sort.Strings(out)
	return out
}

// figure prints a measured value, or "-" where the benchmark did not report it.
func figure(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func ratio(x, y float64) string {
	if x == 0 || y == 0 {
		return "-"
	}
	return strconv.FormatFloat(x/y, 'f', 2, 64) + "x"
}

// parse reads benchmark lines ("BenchmarkGet/b_bare-2  1000  1234 ns/op  56 B/op  7 allocs/op")
// into results[benchmark][sub-benchmark], the median of repeated runs (one run disturbed by
// the rest of the machine moves a median less than a mean).
func parse(in io.Reader) (map[string]map[string]metrics, error) {
	runs := map[string]map[string][]metrics{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name, sub, ok := strings.Cut(fields[0], "/")
		if !ok {
			continue
		}
		if i := strings.LastIndexByte(sub, '-'); i > 0 { // drop the GOMAXPROCS suffix
			if _, err := strconv.Atoi(sub[i+1:]); err == nil {
				sub = sub[:i]
			}
		}
		m := metrics{n: 1}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			if p, ok := m.figures()[fields[i+1]]; ok {
				*p = v
			}
		}
		if runs[name] == nil {
			runs[name] = map[string][]metrics{}
		}
		runs[name][sub] = append(runs[name][sub], m)
	}
	results := make(map[string]map[string]metrics, len(runs))
	for name, subs := range runs {
		results[name] = make(map[string]metrics, len(subs))
		for sub, ms := range subs {
			med := metrics{n: len(ms), ratioMin: ms[0].pairedRatio, ratioMax: ms[0].pairedRatio}
			for _, m := range ms {
				med.ratioMin, med.ratioMax = min(med.ratioMin, m.pairedRatio), max(med.ratioMax, m.pairedRatio)
			}
			for unit, p := range med.figures() {
				*p = median(ms, func(m metrics) float64 { return *m.figures()[unit] })
			}
			results[name][sub] = med
		}
	}
	return results, sc.Err()
}

// median of one figure over runs (the mean of the middle two for an even count).
func median(ms []metrics, figure func(metrics) float64) float64 {
	vs := make([]float64, len(ms))
	for i, m := range ms {
		vs[i] = figure(m)
	}
	sort.Float64s(vs)
	mid := len(vs) / 2
	if len(vs)%2 == 0 {
		return (vs[mid-1] + vs[mid]) / 2
	}
	return vs[mid]
}
