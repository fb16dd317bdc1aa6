//go:build !race

package dotsserver_test

const raceDetector = false
