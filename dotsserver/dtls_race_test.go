//go:build race

package dotsserver_test

// raceDetector: the race detector slows pion's start of a handshake about
// tenfold, so the flood tests send less.
const raceDetector = true
