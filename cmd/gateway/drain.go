package main

import (
	"os"
	"os/signal"
	"syscall"
)

// secondSignal returns a channel that receives the second SIGTERM or SIGINT (the first one
// ends run's context and starts the drain; gwmain.Loop.Again), and the function that stops
// watching.
func secondSignal() (<-chan os.Signal, func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	again, stop := afterFirst(sigs)
	return again, func() {
		signal.Stop(sigs)
		stop()
	}
}

// afterFirst forwards the values of sigs but the first to the channel it returns (without
// blocking: one waits there at most), until the function it returns is called.
func afterFirst(sigs <-chan os.Signal) (<-chan os.Signal, func()) {
	again := make(chan os.Signal, 1)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for n := 0; ; n++ {
			select {
			case sig := <-sigs:
				if n > 0 {
					select {
					case again <- sig:
					default:
					}
				}
			case <-done:
				return
			}
		}
	}()
	return again, func() {
		close(done)
		<-exited
	}
}
