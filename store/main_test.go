package store

import (
	"testing"

	"go.uber.org/goleak"
)

// Every DB a test opens is closed: its writer goroutine must not outlive it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
